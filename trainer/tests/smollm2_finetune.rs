//! A short real fine-tune of SmolLM2-135M-Instruct (the GGUF from scripts/fetch-model.sh): a
//! few LoRA steps over the same handful of dialogues drive the loss down.

mod common;

use ferrotune::train::metrics::read;

#[test]
fn lora_fine_tune_of_smollm2_lowers_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::tiny_config(dir.path());
    let gguf = common::smollm2_gguf();
    let out = common::ferrotune()
        .args(["train", "--config"])
        .arg(&config)
        .args(["--set", &format!("model.path={}", gguf.display())])
        .args([
            "--set",
            "data.max_train_samples=4",
            "--set",
            "training.micro_batch_size=2",
        ])
        .args([
            "--set",
            "training.gradient_accumulation_steps=1",
            "--set",
            "training.max_steps=8",
        ])
        .args([
            "--set",
            "training.learning_rate=1e-3",
            "--set",
            "training.warmup_steps=0",
        ])
        .args([
            "--set",
            "lora.target_modules=[q_proj, k_proj, v_proj, o_proj]",
            "--set",
            "lora.dropout=0",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let losses: Vec<f64> = read(&dir.path().join("out/metrics.jsonl"))
        .unwrap()
        .iter()
        .map(|r| r.loss)
        .collect();
    assert_eq!(losses.len(), 8);
    // Four samples, two per step: steps 2k and 2k+1 together see every sample once (epoch k).
    let epoch = |k: usize| (losses[2 * k] + losses[2 * k + 1]) / 2.0;
    assert!(
        epoch(0) > 0.5,
        "the untuned model already fits the data: {losses:?}"
    );
    assert!(epoch(3) < 0.7 * epoch(0), "loss did not fall: {losses:?}");
    assert!(
        dir.path()
            .join("out/lora_adapters/adapter_model.safetensors")
            .is_file()
    );
}
