//! What training writes is what evaluation reads: a QLoRA adapter and a fully fine-tuned model,
//! written by `train`, loaded again by `eval --model-path`, give the predictions `train` made.

mod common;

use std::path::Path;

fn train(config: &Path, mode: &str) {
    let out = common::ferrotune()
        .args(["train", "--config"])
        .arg(config)
        .args([
            "--set",
            &format!("training.mode={mode}"),
            "--set",
            "training.max_steps=4",
        ])
        .args(["--set", "eval.after_training=true"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn eval(config: &Path, model: &Path, mode: &str) {
    let out = common::ferrotune()
        .args(["eval", "--config"])
        .arg(config)
        .arg("--model-path")
        .arg(model)
        .args(["--set", &format!("training.mode={mode}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn predictions(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("predictions.jsonl")).unwrap()
}

#[test]
fn qlora_adapter_reloads_with_the_same_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::tiny_config(dir.path());
    train(&config, "qlora");
    let adapters = dir.path().join("out/lora_adapters");
    let during = predictions(&adapters);
    let scores = std::fs::read_to_string(adapters.join("eval_results.json")).unwrap();
    std::fs::remove_file(adapters.join("predictions.jsonl")).unwrap();
    eval(&config, &adapters, "qlora");
    assert_eq!(predictions(&adapters), during);
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(adapters.join("eval_results.json")).unwrap())
            .unwrap();
    let first: serde_json::Value = serde_json::from_str(&scores).unwrap();
    assert_eq!(again["rougeL"], first["rougeL"]);
    assert_eq!(again["num_samples"], 4);
}

#[test]
fn full_fine_tune_reloads_with_the_same_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::tiny_config(dir.path());
    train(&config, "full");
    let model = dir.path().join("out/final_model");
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert!(model.join(file).is_file(), "final_model/{file} is missing");
    }
    let during = predictions(&model);
    eval(&config, &model, "full");
    assert_eq!(predictions(&model), during);
}
