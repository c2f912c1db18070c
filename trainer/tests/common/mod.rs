//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

pub mod tensors;

use std::path::PathBuf;

/// Directory of the committed test fixtures.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The reference material beside the repository (`../shared`).
pub fn shared() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

/// The real SmolLM2-135M-Instruct Q4_1 GGUF, as `scripts/fetch-model.sh` places it
/// (or FERROTUNE_SMOLLM2). Panics with the fix when it is missing.
pub fn smollm2_gguf() -> PathBuf {
    let path = std::env::var_os("FERROTUNE_SMOLLM2")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("FERROTUNE_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    std::env::var_os("XDG_CACHE_HOME")
                        .map(PathBuf::from)
                        .unwrap_or_else(|| {
                            PathBuf::from(std::env::var("HOME").expect("HOME is set"))
                                .join(".cache")
                        })
                        .join("ferrotune")
                });
            cache.join("SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-model.sh first",
        path.display()
    );
    path
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A LoRA config on the tiny fixture model and the shipped quickstart rows, writing to `out`;
/// `overrides` are appended as `--set` arguments by the caller.
pub fn tiny_config(dir: &std::path::Path) -> PathBuf {
    let yaml = format!(
        "model:\n  path: {model}\n\
         data:\n  train: {data}/train.jsonl\n  eval: {data}/eval.jsonl\n  max_train_samples: 24\n\
         lora:\n  r: 4\n  alpha: 8\n  dropout: 0.1\n  target_modules: [q_proj, v_proj, down_proj]\n\
         training:\n  mode: lora\n  micro_batch_size: 2\n  gradient_accumulation_steps: 2\n  max_steps: 12\n  \
         learning_rate: 1.0e-3\n  warmup_steps: 2\n  save_steps: 2\n  save_total_limit: 3\n  logging_steps: 1\n  \
         device: cpu\n  max_seq_length: 256\n  truncation: truncate_input\n\
         eval:\n  num_samples: 4\n  max_new_tokens: 8\n  after_training: false\n\
         output:\n  dir: {out}\n",
        model = fixtures().join("tiny-llama").display(),
        data = repo().join("data/quickstart").display(),
        out = dir.join("out").display(),
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, yaml).expect("write the test config");
    path
}

/// The `ferrotune` binary of this build.
pub fn ferrotune() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_ferrotune"))
}
