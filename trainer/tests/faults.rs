//! Nothing is lost, whatever dies: a run killed with SIGKILL anywhere (between steps or inside a
//! checkpoint write), stopped by SIGINT / SIGTERM, resumed past a damaged checkpoint, or stopped by
//! a full disk, resumes from its newest intact checkpoint and reproduces the uninterrupted run's
//! per-step losses and final adapter exactly.
//!
//! `FERROTUNE_FAULT_KILLS` (default 10) sets how many kills the random test makes and
//! `FERROTUNE_FAULT_SEED` replays a failing draw (every run prints its seed).

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use ferrotune::faults::{self, Point};
use ferrotune::train::checkpoint;
use ferrotune::train::metrics::{StepRecord, read};
use rand::{Rng, SeedableRng};

const STEPS: u64 = 12;
const SAVE_EVERY: u64 = 2;

fn train(config: &Path) -> Command {
    let mut cmd = common::ferrotune();
    cmd.args(["train", "--config"]).arg(config);
    cmd
}

fn run_to_end(config: &Path) -> String {
    let out = train(config).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "training failed:\n{stderr}");
    stderr
}

fn losses(dir: &Path) -> Vec<(u64, f64, f64)> {
    let records: Vec<StepRecord> = read(&dir.join("out/metrics.jsonl")).unwrap();
    records
        .iter()
        .map(|r| (r.step, r.loss, r.grad_norm))
        .collect()
}

fn logged(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("out/metrics.jsonl"))
        .map(|t| t.lines().count() as u64)
        .unwrap_or(0)
}

fn newest_step(dir: &Path) -> u64 {
    checkpoint::newest(&dir.join("out/checkpoints"))
        .unwrap()
        .map_or(0, |c| c.state.step)
}

/// Starts training and sends `signal` once `after` steps are logged; returns the exit status and
/// how long the process took to exit after the signal.
fn interrupt(config: &Path, dir: &Path, signal: &str, after: u64) -> (ExitStatus, Duration) {
    let mut child = train(config).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while logged(dir) < after {
        assert!(
            child.try_wait().unwrap().is_none(),
            "training ended before it could be interrupted"
        );
        assert!(Instant::now() < deadline, "training made no progress");
        std::thread::sleep(Duration::from_millis(1));
    }
    let sent = Instant::now();
    Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    (status, sent.elapsed())
}

/// Runs training with a fault armed at `point` while saving `step`.
fn crash_at(config: &Path, point: Point, step: u64) -> ExitStatus {
    train(config)
        .env(faults::VAR, format!("{}@{step}", point.name()))
        .stderr(Stdio::null())
        .status()
        .unwrap()
}

fn adapter(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("out/lora_adapters/adapter_model.safetensors")).unwrap()
}

/// The uninterrupted run every faulty one must reproduce.
fn reference() -> (tempfile::TempDir, Vec<(u64, f64, f64)>) {
    let whole = tempfile::tempdir().unwrap();
    run_to_end(&common::tiny_config(whole.path()));
    let losses = losses(whole.path());
    assert_eq!(losses.len(), STEPS as usize);
    assert!(
        losses
            .iter()
            .all(|(_, l, g)| l.is_finite() && g.is_finite())
    );
    (whole, losses)
}

fn assert_same_as(dir: &Path, whole: &Path, what: &str) {
    assert_eq!(
        losses(dir),
        losses(whole),
        "per-step losses after {what} differ"
    );
    assert_eq!(
        adapter(dir),
        adapter(whole),
        "final adapters after {what} differ"
    );
}

fn env_or<T: std::str::FromStr>(var: &str, default: T) -> T {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn random_kills_anywhere_lose_nothing() {
    let (whole, _) = reference();
    let kills: usize = env_or("FERROTUNE_FAULT_KILLS", 10);
    let seed: u64 = env_or("FERROTUNE_FAULT_SEED", rand::random());
    eprintln!("FERROTUNE_FAULT_SEED={seed} FERROTUNE_FAULT_KILLS={kills}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let cut = tempfile::tempdir().unwrap();
    let config = common::tiny_config(cut.path());
    for kill in 0..kills {
        // Each run resumes from the newest checkpoint; a kill lands after that step, inside a
        // checkpoint write or between steps.
        let resumed = newest_step(cut.path());
        if resumed >= STEPS {
            break;
        }
        let next_save = (resumed / SAVE_EVERY + 1) * SAVE_EVERY;
        let status = if rng.random_bool(0.4) {
            let step = rng.random_range(next_save / SAVE_EVERY..=STEPS / SAVE_EVERY) * SAVE_EVERY;
            let point = [Point::CheckpointParts, Point::CheckpointCommit][rng.random_range(0..2)];
            eprintln!(
                "kill {}: inside the checkpoint write of step {step} ({})",
                kill + 1,
                point.name()
            );
            crash_at(&config, point, step)
        } else {
            let after = rng.random_range(resumed + 1..STEPS);
            eprintln!("kill {}: after step {after} is logged", kill + 1);
            interrupt(&config, cut.path(), "-KILL", after).0
        };
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "kill {} (seed {seed}): the run was not killed ({status})",
            kill + 1
        );
        assert!(
            newest_step(cut.path()) >= resumed,
            "kill {} (seed {seed}): a checkpoint was lost",
            kill + 1
        );
    }
    run_to_end(&config);
    assert_same_as(
        cut.path(),
        whole.path(),
        &format!("{kills} kills (seed {seed})"),
    );
}

#[test]
fn sigint_and_sigterm_checkpoint_the_last_step_and_exit_130() {
    let (whole, _) = reference();
    for (signal, after) in [("-INT", 3), ("-TERM", 7)] {
        let cut = tempfile::tempdir().unwrap();
        let config = common::tiny_config(cut.path());
        let (status, took) = interrupt(&config, cut.path(), signal, after);
        eprintln!(
            "{signal}: exited {:.3} s after the signal",
            took.as_secs_f64()
        );
        assert_eq!(
            status.code(),
            Some(130),
            "{signal}: an interrupted run exits 130"
        );
        // The operator gives a pod 120 s after SIGTERM; a step and a checkpoint take far less.
        assert!(
            took < Duration::from_secs(30),
            "{signal}: took {took:?} to stop"
        );
        assert_eq!(
            newest_step(cut.path()),
            logged(cut.path()),
            "{signal}: the checkpoint holds the last finished step"
        );
        run_to_end(&config);
        assert_same_as(cut.path(), whole.path(), signal);
    }
}

#[test]
fn a_damaged_checkpoint_is_skipped_for_the_previous_one_with_a_warning() {
    let (whole, _) = reference();
    let cut = tempfile::tempdir().unwrap();
    let config = common::tiny_config(cut.path());
    let status = crash_at(&config, Point::CheckpointParts, 10);
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert_eq!(newest_step(cut.path()), 8);
    // One flipped bit in the middle of the newest checkpoint's tensors.
    let part = cut
        .path()
        .join("out/checkpoints/step-00000008")
        .join(checkpoint::shard_file(0, 1));
    let mut bytes = std::fs::read(&part).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&part, bytes).unwrap();

    let stderr = run_to_end(&config);
    for needed in [
        "step-00000008",
        "is damaged",
        "falling back",
        "resuming from",
        "step 6/12",
    ] {
        assert!(stderr.contains(needed), "no {needed:?} in:\n{stderr}");
    }
    assert_same_as(cut.path(), whole.path(), "skipping a damaged checkpoint");
}

/// Mounts a tmpfs in a private mount namespace and runs `script` there, as an unprivileged user
/// namespace allows or as root; `None` when this machine allows neither.
fn in_private_tmpfs(script: &str) -> Option<std::process::Output> {
    for args in [&["-Urm"][..], &["-m"][..]] {
        let probe = Command::new("unshare")
            .args(args)
            .args(["sh", "-c", "mount -t tmpfs tmpfs /mnt"])
            .output();
        if probe.is_ok_and(|o| o.status.success()) {
            return Some(
                Command::new("unshare")
                    .args(args)
                    .args(["sh", "-ec", script])
                    .output()
                    .unwrap(),
            );
        }
    }
    None
}

#[test]
fn a_full_disk_fails_clearly_and_keeps_the_previous_checkpoint() {
    let host = tempfile::tempdir().unwrap();
    let disk = host.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let config = common::tiny_config(&disk);
    // A run that stopped after step 4, as a crash leaves it.
    assert_eq!(
        crash_at(&config, Point::CheckpointParts, 6).signal(),
        Some(libc::SIGKILL)
    );
    let checkpoint_bytes: u64 = std::fs::read_dir(disk.join("out/checkpoints/step-00000004"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let staged = host.path().join("staged");
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(&disk)
            .arg(&staged)
            .status()
            .unwrap()
            .success()
    );
    // The crash left step 6 half-written; its space would be reused, so it goes.
    std::fs::remove_dir_all(staged.join("out/checkpoints/.tmp-step-00000006")).unwrap();
    let after: PathBuf = host.path().join("after");
    // The disk gets half a checkpoint of room, so the next checkpoint cannot fit.
    let script = format!(
        "mount -t tmpfs -o size=16m tmpfs {disk}\n\
         cp -a {staged}/. {disk}/\n\
         avail=$(df --output=avail -B1 {disk} | tail -n 1)\n\
         fallocate -l $((avail - {room})) {disk}/filler\n\
         set +e\n\
         {bin} train --config {config} 2> {host}/stderr\n\
         echo $? > {host}/rc\n\
         cp -a {disk}/out/checkpoints {after}\n",
        disk = disk.display(),
        staged = staged.display(),
        room = checkpoint_bytes / 2,
        bin = env!("CARGO_BIN_EXE_ferrotune"),
        config = config.display(),
        host = host.path().display(),
        after = after.display(),
    );
    let Some(out) = in_private_tmpfs(&script) else {
        eprintln!(
            "skipped: this machine allows no private tmpfs mount (unshare -Urm or -m as root)"
        );
        return;
    };
    assert!(
        out.status.success(),
        "the disk-full script failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rc = std::fs::read_to_string(host.path().join("rc")).unwrap();
    let stderr = std::fs::read_to_string(host.path().join("stderr")).unwrap();
    assert_eq!(rc.trim(), "1", "a full disk is an error:\n{stderr}");
    for needed in [
        "is full",
        "No space left on device",
        "older checkpoints are intact",
    ] {
        assert!(stderr.contains(needed), "no {needed:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    let newest = checkpoint::newest(&after).unwrap().unwrap();
    assert_eq!(
        newest.state.step, 4,
        "the previous checkpoint is the newest"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&after)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "half-written checkpoints left: {leftovers:?}"
    );
}

#[test]
fn non_finite_steps_are_skipped_counted_and_never_applied() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::tiny_config(dir.path());
    // An absurd adapter scale makes every loss overflow.
    let out = train(&config)
        .args([
            "--set",
            "lora.alpha=1e38",
            "--set",
            "training.learning_rate=0.5",
        ])
        .args([
            "--set",
            "training.warmup_steps=0",
            "--set",
            "training.nonfinite=skip",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "skipping is not failing:\n{stderr}");
    let records: Vec<StepRecord> = read(&dir.path().join("out/metrics.jsonl")).unwrap();
    assert_eq!(records.len(), STEPS as usize);
    for r in &records {
        let finite = r.loss.is_finite() && r.grad_norm.is_finite();
        assert_eq!(r.skipped, !finite, "step {}", r.step);
    }
    let skipped = records.iter().filter(|r| r.skipped).count();
    assert!(skipped > 0, "the scale made no step non-finite");
    assert!(
        stderr.contains(&format!("{skipped} of {STEPS} steps were skipped")),
        "{stderr}"
    );
    let adapter = candle_core::safetensors::load(
        dir.path()
            .join("out/lora_adapters/adapter_model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    for (name, t) in adapter {
        let values = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(
            values.iter().all(|v| v.is_finite()),
            "{name} holds a non-finite value"
        );
    }
}
