//! Distributed training on CPU processes over loopback: for world sizes 1, 2 and 4 and every
//! strategy, LoRA and full fine-tuning reproduce the single-process run's per-step losses and
//! final weights with the same global batch; a checkpoint resumes at another world size and
//! strategy; a killed rank stops every rank with an error naming it, and the rerun resumes.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::tensors::TensorFile;
use ferrotune::train::metrics::{StepRecord, read};

/// Micro-batches per step of the single-process run; world w runs `GLOBAL / w` of them per rank.
const GLOBAL: usize = 4;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `ferrotune train` on the tiny model with `world` local ranks (none: one plain process).
fn train(dir: &Path, world: Option<usize>, sets: &[String]) -> Command {
    let mut cmd = common::ferrotune();
    cmd.args(["train", "--config"])
        .arg(common::tiny_config(dir))
        .args(["--set", "training.max_steps=6"]);
    let accumulation = GLOBAL / world.unwrap_or(1);
    cmd.args([
        "--set".to_string(),
        format!("training.gradient_accumulation_steps={accumulation}"),
    ]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    if let Some(w) = world {
        cmd.env("NPROC_PER_NODE", w.to_string())
            .env("MASTER_PORT", free_port().to_string());
    }
    cmd
}

fn succeed(mut cmd: Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "training failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn records(dir: &Path) -> Vec<StepRecord> {
    read(&dir.join("out/metrics.jsonl")).unwrap()
}

/// Every f32 tensor of the run's export (adapters, or the full model), by name, with its shape.
fn export(dir: &Path, mode: &str) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let file: PathBuf = match mode {
        "full" => dir.join("out/final_model/model.safetensors"),
        _ => dir.join("out/lora_adapters/adapter_model.safetensors"),
    };
    let f = TensorFile::open(file);
    f.names()
        .into_iter()
        .map(|n| {
            let v = (f.shape(&n), f.f32(&n));
            (n, v)
        })
        .collect()
}

fn assert_same_run(what: &str, got: &Path, want: &Path, mode: &str) {
    let (g, w) = (records(got), records(want));
    assert_eq!(g.len(), w.len(), "{what}: steps logged");
    for (a, b) in g.iter().zip(&w) {
        assert!(
            (a.loss - b.loss).abs() <= 1e-5,
            "{what}: step {} loss {} vs single-process {}",
            a.step,
            a.loss,
            b.loss
        );
        assert!(
            (a.grad_norm - b.grad_norm).abs() <= 1e-5 * b.grad_norm.max(1.0),
            "{what}: step {} grad norm {} vs {}",
            a.step,
            a.grad_norm,
            b.grad_norm
        );
        assert_eq!(a.tokens, b.tokens, "{what}: step {} tokens", a.step);
    }
    let (g, w) = (export(got, mode), export(want, mode));
    assert_eq!(
        g.keys().collect::<Vec<_>>(),
        w.keys().collect::<Vec<_>>(),
        "{what}: exported tensor names"
    );
    for (name, (shape, values)) in &g {
        let (want_shape, want_values) = &w[name];
        assert_eq!(shape, want_shape, "{what}: shape of {name}");
        let worst = values
            .iter()
            .zip(want_values)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 1e-5, "{what}: {name} differs by {worst}");
    }
}

fn every_world_and_strategy_matches(mode: &str) {
    let mode_set = format!("training.mode={mode}");
    let single = tempfile::tempdir().unwrap();
    succeed(train(single.path(), None, std::slice::from_ref(&mode_set)));
    for world in [1, 2, 4] {
        for strategy in ["ddp", "zero2", "zero3"] {
            let dir = tempfile::tempdir().unwrap();
            let sets = [mode_set.clone(), format!("distributed.strategy={strategy}")];
            succeed(train(dir.path(), Some(world), &sets));
            let what = format!("{mode}, {strategy}, world {world}");
            assert_same_run(&what, dir.path(), single.path(), mode);
            if mode == "lora" {
                let config = |d: &Path| {
                    std::fs::read_to_string(d.join("out/lora_adapters/adapter_config.json"))
                        .unwrap()
                };
                assert_eq!(config(dir.path()), config(single.path()), "{what}");
            }
        }
    }
}

#[test]
fn lora_matches_the_single_process_run_at_every_world_size_and_strategy() {
    every_world_and_strategy_matches("lora");
}

#[test]
fn full_fine_tuning_matches_the_single_process_run_at_every_world_size_and_strategy() {
    every_world_and_strategy_matches("full");
}

#[test]
fn a_checkpoint_resumes_at_another_world_size_and_strategy() {
    let single = tempfile::tempdir().unwrap();
    succeed(train(single.path(), None, &[]));
    let dir = tempfile::tempdir().unwrap();
    succeed(train(
        dir.path(),
        Some(2),
        &["distributed.strategy=zero3".into()],
    ));
    // Forget the last checkpoint: the rerun resumes from step 4, written by two ZeRO-3 ranks.
    let checkpoints = dir.path().join("out/checkpoints");
    std::fs::remove_dir_all(checkpoints.join("step-00000006")).unwrap();
    let shards: Vec<String> = std::fs::read_dir(checkpoints.join("step-00000004"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("shard-") && n.ends_with(".safetensors"))
        .collect();
    assert_eq!(shards.len(), 2, "one part per rank: {shards:?}");
    let out = succeed(train(
        dir.path(),
        Some(4),
        &["distributed.strategy=ddp".into()],
    ));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("resuming from") && log.contains("step 4/6"),
        "the rerun says where it resumes:\n{log}"
    );
    assert_same_run(
        "zero3 × 2 resumed as ddp × 4",
        dir.path(),
        single.path(),
        "lora",
    );
}

/// The ranks a launcher started, by rank.
fn ranks_of(launcher: u32) -> BTreeMap<usize, u32> {
    let children =
        std::fs::read_to_string(format!("/proc/{launcher}/task/{launcher}/children")).unwrap();
    children
        .split_whitespace()
        .map(|pid| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
            let rank = environ
                .split(|&b| b == 0)
                .find_map(|kv| kv.strip_prefix(b"RANK="))
                .map(|v| String::from_utf8_lossy(v).parse().unwrap())
                .unwrap();
            (rank, pid.parse().unwrap())
        })
        .collect()
}

#[test]
fn a_killed_rank_stops_every_rank_naming_it_and_the_rerun_resumes() {
    let long = ["training.max_steps=40".to_string()];
    let single = tempfile::tempdir().unwrap();
    succeed(train(single.path(), None, &long));

    let dir = tempfile::tempdir().unwrap();
    let mut launcher = train(dir.path(), Some(4), &long)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let metrics = dir.path().join("out/metrics.jsonl");
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::read_to_string(&metrics).map_or(0, |t| t.lines().count()) < 5 {
        assert!(
            launcher.try_wait().unwrap().is_none(),
            "training ended early"
        );
        assert!(Instant::now() < deadline, "training made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    let ranks = ranks_of(launcher.id());
    assert_eq!(ranks.len(), 4, "four ranks: {ranks:?}");
    let killed_at = Instant::now();
    Command::new("kill")
        .args(["-KILL", &ranks[&2].to_string()])
        .status()
        .unwrap();
    let out = launcher.wait_with_output().unwrap();
    let took = killed_at.elapsed();
    eprintln!(
        "every rank exited {:.2} s after rank 2 was killed",
        took.as_secs_f64()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the launcher fails");
    assert!(
        took < Duration::from_secs(30),
        "every rank exited in {took:?}"
    );
    assert!(
        stderr.contains("rank 2 failed (killed by SIGKILL)"),
        "the error names the rank:\n{stderr}"
    );
    for (rank, pid) in ranks {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z ")),
            "rank {rank} (pid {pid}) is still running"
        );
    }
    let logged = records(dir.path()).len();
    assert!(logged < 40, "killed before the end ({logged} steps)");

    let out = succeed(train(dir.path(), Some(4), &long));
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming from"));
    assert_same_run(
        "resumed after a killed rank",
        dir.path(),
        single.path(),
        "lora",
    );
}
