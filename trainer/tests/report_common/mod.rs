//! Helpers of the report tests: tiny training runs made with the `ferrotune` binary, and the
//! external programs the tests check with (TensorBoard's Python reader, headless Chromium).
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's root.
pub fn repo_root() -> PathBuf {
    let trainer = Path::new(env!("CARGO_MANIFEST_DIR"));
    trainer
        .parent()
        .expect("the trainer crate is in the workspace")
        .to_path_buf()
}

/// The report fixtures directory.
pub fn report_fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report")
}

/// Runs the `ferrotune` binary with `args`, returning its output whatever its exit status.
pub fn ferrotune(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrotune"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the ferrotune binary runs")
}

/// Runs the `ferrotune` binary with `args` and panics with its stderr unless it succeeds.
pub fn ferrotune_ok(args: &[&str]) -> Output {
    let out = ferrotune(args);
    assert!(
        out.status.success(),
        "ferrotune {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A tiny training run: the tiny random Llama fixture fine-tuned for a few steps on the small
/// dialogue rows, evaluated before and after on `eval_rows`.
pub struct TinyRun<'a> {
    /// `lora` or `full`.
    pub mode: &'a str,
    /// Optimizer steps.
    pub steps: u64,
    /// Checkpoint interval (0: only at the end).
    pub save_steps: u64,
    /// The evaluation rows (a .jsonl with `dialogue` and `summary`).
    pub eval_rows: &'a Path,
}

impl TinyRun<'_> {
    /// Trains into `out` (resuming from a checkpoint there, if any).
    pub fn train(&self, out: &Path) {
        let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let config = format!(
            "model:\n  path: {model}\n  name: tiny-llama\n\
             data:\n  train: {train}\n  eval: {eval}\n\
             training:\n  mode: {mode}\n  max_steps: {steps}\n  micro_batch_size: 2\n  \
             gradient_accumulation_steps: 1\n  learning_rate: 1.0e-2\n  warmup_steps: 2\n  \
             max_seq_length: 256\n  logging_steps: 2\n  save_steps: {save}\n  device: cpu\n\
             eval:\n  num_samples: 8\n  max_new_tokens: 12\n  batch_size: 4\n  before_training: true\n\
             output:\n  dir: {out}\n",
            model = fixtures.join("tiny-llama").display(),
            train = fixtures.join("data/rows.jsonl").display(),
            eval = self.eval_rows.display(),
            mode = self.mode,
            steps = self.steps,
            save = self.save_steps,
            out = out.display(),
        );
        std::fs::create_dir_all(out).unwrap();
        let config_path = out.with_extension("yaml");
        std::fs::write(&config_path, config).unwrap();
        ferrotune_ok(&["train", "--config", config_path.to_str().unwrap()]);
    }
}

/// The Python that has the test requirements (`scripts/test-requirements.txt`): env
/// FERROTUNE_PYTHON, else the repository's `.venv`.
pub fn python() -> PathBuf {
    let path = std::env::var_os("FERROTUNE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    assert!(
        path.exists(),
        "{} is missing: create the test environment with `python3 -m venv .venv && \
         .venv/bin/pip install -r scripts/test-requirements.txt` at the repository root, or set \
         FERROTUNE_PYTHON to a Python that has the `tensorboard` package",
        path.display()
    );
    path
}

/// Runs `script` (a file of the report fixtures) with the test Python and returns its stdout.
pub fn run_python(script: &str, args: &[&Path]) -> String {
    let out = Command::new(python())
        .arg(report_fixtures().join(script))
        .args(args)
        .output()
        .expect("the test Python runs");
    assert!(
        out.status.success(),
        "{script} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Headless Chromium: env FERROTUNE_CHROMIUM, else `chromium` (Debian's package) or
/// `chromium-browser` on PATH.
pub fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("FERROTUNE_CHROMIUM") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "headless Chromium is missing: install Debian's `chromium` package \
                 (apt-get install -y chromium) or set FERROTUNE_CHROMIUM to its binary"
            )
        })
}
