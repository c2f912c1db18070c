//! `train-throughput` on the tiny shape: the record has the reference's keys and numbers that
//! follow from the shape (trainable counts, initial loss of a random model, timings).

use std::process::Command;

fn run(mode: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_train-throughput"))
        .args(["--model", "tiny", "--mode", mode, "--seq-len", "32"])
        .args(["--micro-batch", "2", "--steps", "3", "--warmup", "1"])
        .output()
        .expect("run train-throughput");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn lora_record_counts_the_adapters_and_starts_at_uniform_loss() {
    let r = run("lora");
    assert_eq!(r["status"], "ok");
    assert_eq!(
        (r["model"].as_str(), r["mode"].as_str()),
        (Some("tiny"), Some("lora"))
    );
    // r = 16 on all seven projections of 2 layers (hidden 64, q 64, kv 32, ffn 128).
    let per_layer = 16 * ((64 + 64) + 2 * (64 + 32) + (64 + 64) + 2 * (64 + 128) + (128 + 64));
    assert_eq!(r["n_lora_params"], 2 * per_layer);
    assert_eq!(r["n_trainable"], r["n_lora_params"]);
    // Random weights with std 0.02 give nearly uniform predictions over 512 tokens.
    let first = r["loss_first"].as_f64().unwrap();
    assert!((first - 512f64.ln()).abs() < 0.05, "first loss {first}");
    let tps = r["tokens_per_s"].as_f64().unwrap();
    let step_ms = r["step_ms"].as_f64().unwrap();
    assert!(tps > 0.0 && step_ms > 0.0);
    assert!(
        (tps * step_ms / 1e3 - 64.0).abs() < 0.5,
        "tokens/s × step = 2 × 32 tokens"
    );
    assert!(r["step_ms_min"].as_f64() <= r["step_ms_max"].as_f64());
}

#[test]
fn full_record_trains_every_parameter() {
    let r = run("full");
    assert_eq!(r["status"], "ok");
    // Matmul weights (projections + tied head) plus the embedding-free extras: 5 norms of 64.
    let matmul = r["n_matmul_params"].as_u64().unwrap();
    assert_eq!(r["n_trainable"].as_u64().unwrap(), matmul + 5 * 64);
    assert!(r["flops_per_token"].as_f64().unwrap() > 6.0 * matmul as f64);
}
