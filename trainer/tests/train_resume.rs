//! Nothing is lost: a run killed with SIGKILL (or stopped with Ctrl-C) and started again resumes
//! from its newest checkpoint and reproduces the uninterrupted run's per-step losses and final
//! adapter exactly.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferrotune::train::metrics::{StepRecord, read};

fn run_to_end(config: &Path) {
    let out = common::ferrotune()
        .args(["train", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "training failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn losses(dir: &Path) -> Vec<(u64, f64, f64)> {
    let records: Vec<StepRecord> = read(&dir.join("out/metrics.jsonl")).unwrap();
    records
        .iter()
        .map(|r| (r.step, r.loss, r.grad_norm))
        .collect()
}

/// Starts training and stops it with `signal` once `after` steps are logged.
fn interrupt(config: &Path, dir: &Path, signal: &str, after: usize) -> std::process::ExitStatus {
    let mut child = common::ferrotune()
        .args(["train", "--config"])
        .arg(config)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let metrics = dir.join("out/metrics.jsonl");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let logged = std::fs::read_to_string(&metrics)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if logged >= after {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "training ended before it could be interrupted"
        );
        assert!(Instant::now() < deadline, "training made no progress");
        std::thread::sleep(Duration::from_millis(2));
    }
    Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap()
}

fn adapter(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("out/lora_adapters/adapter_model.safetensors")).unwrap()
}

#[test]
fn killed_run_resumes_with_identical_losses() {
    let whole = tempfile::tempdir().unwrap();
    run_to_end(&common::tiny_config(whole.path()));
    let reference = losses(whole.path());
    assert_eq!(reference.len(), 12);
    assert!(
        reference
            .iter()
            .all(|(_, l, g)| l.is_finite() && g.is_finite())
    );

    let cut = tempfile::tempdir().unwrap();
    let config = common::tiny_config(cut.path());
    let status = interrupt(&config, cut.path(), "-KILL", 5);
    assert!(!status.success());
    let partial = losses(cut.path());
    assert!(
        partial.len() < 12,
        "the run was killed before it finished ({} steps logged)",
        partial.len()
    );
    run_to_end(&config);
    assert_eq!(
        losses(cut.path()),
        reference,
        "per-step losses after resuming differ"
    );
    assert_eq!(
        adapter(cut.path()),
        adapter(whole.path()),
        "final adapters differ"
    );
}

#[test]
fn ctrl_c_writes_a_checkpoint_and_exits_130() {
    let whole = tempfile::tempdir().unwrap();
    run_to_end(&common::tiny_config(whole.path()));
    let cut = tempfile::tempdir().unwrap();
    let config = common::tiny_config(cut.path());
    let status = interrupt(&config, cut.path(), "-INT", 3);
    assert_eq!(
        status.code(),
        Some(130),
        "an interrupted run exits with 130"
    );
    let logged = losses(cut.path()).len() as u64;
    let newest = ferrotune::train::checkpoint::newest(&cut.path().join("out/checkpoints"))
        .unwrap()
        .unwrap();
    assert_eq!(
        newest.state.step, logged,
        "the checkpoint holds the last finished step"
    );
    run_to_end(&config);
    assert_eq!(losses(cut.path()), losses(whole.path()));
}
