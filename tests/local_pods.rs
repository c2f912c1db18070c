//! The operator's rendered pods, run as local processes: each pod's command with its
//! environment (downward-API fields resolved, rank 0's DNS name mapped to 127.0.0.1) and its
//! volumes mapped to directories. The real trainer trains, reports progress in its log the way
//! the operator reads it, and writes its outputs onto the "output claim".

mod common;

use common::repo_root;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ferrotune_config::progress::{Progress, RunPhase};
use ferrotune_crds::TrainingJob;
use ferrotune_operator::desired::{self, AttemptParams};
use k8s_openapi::api::core::v1::PodSpec;

/// The trainer binary of this build (`cargo test --workspace` builds it).
fn trainer() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("ferrotune");
    assert!(
        bin.exists(),
        "{} is missing: build the trainer first (`cargo build -p ferrotune`)",
        bin.display()
    );
    bin
}

const MANIFEST: &str = r#"
apiVersion: ferrotune.dev/v1alpha1
kind: TrainingJob
metadata: {name: local, namespace: ml, uid: 0f0f0f0f-0000-4000-8000-000000000001}
spec:
  image: ferrotune:cpu
  training:
    model: {path: /models/tiny-llama}
    data: {train: /data/train.jsonl, eval: /data/eval.jsonl, max_train_samples: 16}
    lora: {r: 4, alpha: 8, target_modules: [q_proj, v_proj]}
    training: {mode: lora, device: cpu, micro_batch_size: 2, gradient_accumulation_steps: 2,
               max_steps: 4, learning_rate: 1.0e-3, warmup_steps: 1, save_steps: 2,
               logging_steps: 1, max_seq_length: 256, truncation: truncate_input}
    eval: {num_samples: 2, max_new_tokens: 4}
    output: {dir: run}
  storage:
    output: {claimName: runs, mountPath: /runs}
    volumes:
    - {claimName: models, mountPath: /models, readOnly: true}
    - {claimName: data, mountPath: /data, readOnly: true}
"#;

/// Maps container paths to host directories, longest prefix first.
struct Mounts(Vec<(String, PathBuf)>);

impl Mounts {
    fn map(&self, text: &str) -> String {
        // Two passes, so a host path that starts like a container path is not mapped again.
        let mut out = text.to_string();
        for (i, (from, _)) in self.0.iter().enumerate() {
            out = out.replace(&format!("{from}/"), &format!("\u{0}{i}\u{0}/"));
            if out == *from {
                out = format!("\u{0}{i}\u{0}");
            }
        }
        for (i, (_, to)) in self.0.iter().enumerate() {
            out = out.replace(&format!("\u{0}{i}\u{0}"), &to.display().to_string());
        }
        out
    }
}

/// The process of pod `index` of the rendered Job, output captured.
fn pod_command(
    pod: &PodSpec,
    config_map: &BTreeMap<String, String>,
    index: u32,
    mounts: &Mounts,
    host: &Path,
) -> Command {
    let container = &pod.containers[0];
    // The ConfigMap volume, written out as the kubelet would.
    let config_dir = host.join("etc-ferrotune");
    std::fs::create_dir_all(&config_dir).unwrap();
    for (file, text) in config_map {
        std::fs::write(config_dir.join(file), mounts.map(text)).unwrap();
    }
    let mut mounts = Mounts(mounts.0.clone());
    mounts.0.push(("/etc/ferrotune".into(), config_dir));
    let command = container.command.as_ref().unwrap();
    assert_eq!(command[0], "ferrotune", "the image's entry point");
    let mut cmd = Command::new(trainer());
    cmd.args(command[1..].iter().map(|a| mounts.map(a)))
        .env_clear();
    cmd.env("PATH", std::env::var("PATH").unwrap_or_default());
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) => mounts.map(v),
            (None, Some(from)) => {
                let path = &from
                    .field_ref
                    .as_ref()
                    .expect("only downward-API fields here")
                    .field_path;
                assert!(path.contains("job-completion-index"), "{path}");
                index.to_string()
            }
            (None, None) => String::new(),
        };
        let value = if var.name == "MASTER_ADDR" {
            "127.0.0.1".into()
        } else {
            value
        };
        cmd.env(&var.name, value);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// Runs pod `index` of the rendered Job; returns (exit success, stderr).
fn run_pod(
    pod: &PodSpec,
    config_map: &BTreeMap<String, String>,
    index: u32,
    mounts: &Mounts,
    host: &Path,
) -> (bool, String) {
    let out = pod_command(pod, config_map, index, mounts, host)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The volumes as directories under `host`: (mounts, the output claim's directory).
fn host_mounts(host: &Path) -> (Mounts, PathBuf) {
    let runs = host.join("runs");
    let tmp = host.join("tmp");
    std::fs::create_dir_all(&runs).unwrap();
    std::fs::create_dir_all(&tmp).unwrap();
    let mounts = Mounts(vec![
        ("/runs".into(), runs.clone()),
        ("/models".into(), repo_root().join("trainer/tests/fixtures")),
        ("/data".into(), repo_root().join("data/quickstart")),
        ("/tmp".into(), tmp),
    ]);
    (mounts, runs)
}

#[test]
fn a_rendered_cpu_training_job_trains_and_writes_its_outputs() {
    let job: TrainingJob = serde_saphyr::from_str(MANIFEST).unwrap();
    assert!(job.spec.problems().is_empty(), "{:?}", job.spec.problems());
    let attempt = desired::attempt(
        &job,
        AttemptParams {
            attempt: 1,
            suspend: false,
            deadline_left: None,
        },
    );
    let host = tempfile::tempdir().unwrap();
    let (mounts, runs) = host_mounts(host.path());
    let spec = attempt.job.spec.as_ref().unwrap();
    let pod = spec.template.spec.as_ref().unwrap();
    let config = attempt.config.data.clone().unwrap();
    for index in 0..spec.completions.unwrap() as u32 {
        let (ok, stderr) = run_pod(pod, &config, index, &mounts, host.path());
        assert!(ok, "pod {index} failed:\n{stderr}");
        // The operator's view of the run: the newest progress line of rank 0's log.
        let progress = Progress::last_in_log(&stderr)
            .unwrap_or_else(|| panic!("no progress lines in the log of pod {index}:\n{stderr}"));
        assert_eq!(progress.phase, RunPhase::Exporting, "{progress:?}");
        assert_eq!(progress.total_steps, 4);
        assert_eq!(progress.step, 4);
        assert_eq!(progress.last_checkpoint_step, Some(4));
    }
    let out = runs.join("run");
    for file in [
        "lora_adapters/adapter_model.safetensors",
        "lora_adapters/adapter_config.json",
        "metrics.jsonl",
        "lora_adapters/eval_results.json",
        "lora_adapters/predictions.jsonl",
    ] {
        assert!(
            out.join(file).is_file(),
            "{} missing",
            out.join(file).display()
        );
    }
    assert!(out.join("checkpoints").is_dir());
}

/// `MANIFEST` as a 2-node × 2-process ZeRO-3 job with the same global batch of 8 samples
/// (2 per micro-batch, no accumulation, 4 ranks), rendezvous on `port`.
fn two_node_manifest(port: u16) -> String {
    MANIFEST
        .replace("gradient_accumulation_steps: 2", "gradient_accumulation_steps: 1")
        .replace(
            "    output: {dir: run}",
            "    output: {dir: run}\n    distributed: {strategy: zero3}",
        )
        .replace(
            "  image: ferrotune:cpu",
            &format!(
                "  image: ferrotune:cpu\n  parallelism: {{nodes: 2, procsPerNode: 2, masterPort: {port}}}"
            ),
        )
}

#[test]
fn a_rendered_two_node_job_of_two_processes_each_trains_like_one_process() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let job: TrainingJob = serde_saphyr::from_str(&two_node_manifest(port)).unwrap();
    assert!(job.spec.problems().is_empty(), "{:?}", job.spec.problems());
    assert_eq!(job.spec.parallelism.world_size(), 4);
    let attempt = desired::attempt(
        &job,
        AttemptParams {
            attempt: 1,
            suspend: false,
            deadline_left: None,
        },
    );
    let host = tempfile::tempdir().unwrap();
    let (mounts, runs) = host_mounts(host.path());
    let spec = attempt.job.spec.as_ref().unwrap();
    assert_eq!(spec.completions, Some(2), "one pod per node");
    let pod = spec.template.spec.as_ref().unwrap();
    let config = attempt.config.data.clone().unwrap();
    // Both "nodes" at once, as the Indexed Job starts them.
    let nodes: Vec<_> = (0..2)
        .map(|index| {
            let node_dir = host.path().join(format!("node-{index}"));
            pod_command(pod, &config, index, &mounts, &node_dir)
                .spawn()
                .unwrap()
        })
        .collect();
    let logs: Vec<String> = nodes
        .into_iter()
        .enumerate()
        .map(|(index, node)| {
            let out = node.wait_with_output().unwrap();
            let log = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(out.status.success(), "pod {index} failed:\n{log}");
            log
        })
        .collect();
    let progress = Progress::last_in_log(&logs[0])
        .unwrap_or_else(|| panic!("no progress lines in rank 0's log:\n{}", logs[0]));
    assert_eq!((progress.step, progress.total_steps), (4, 4));
    assert!(
        logs[1].contains("[rank 3]"),
        "pod 1 ran ranks 2 and 3:\n{}",
        logs[1]
    );
    let shards: Vec<String> = std::fs::read_dir(runs.join("run/checkpoints/step-00000004"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("shard-") && n.ends_with(".safetensors"))
        .collect();
    assert_eq!(shards.len(), 4, "every rank wrote its part: {shards:?}");

    // The same training in one process: 4 micro-batches of 2 per step.
    let single = tempfile::tempdir().unwrap();
    let (single_mounts, single_runs) = host_mounts(single.path());
    let one: TrainingJob = serde_saphyr::from_str(&MANIFEST.replace(
        "gradient_accumulation_steps: 2",
        "gradient_accumulation_steps: 4",
    ))
    .unwrap();
    let attempt = desired::attempt(
        &one,
        AttemptParams {
            attempt: 1,
            suspend: false,
            deadline_left: None,
        },
    );
    let spec = attempt.job.spec.as_ref().unwrap();
    let (ok, log) = run_pod(
        spec.template.spec.as_ref().unwrap(),
        &attempt.config.data.clone().unwrap(),
        0,
        &single_mounts,
        single.path(),
    );
    assert!(ok, "{log}");
    let losses = |dir: &Path| -> Vec<f64> {
        std::fs::read_to_string(dir.join("run/metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"]
                    .as_f64()
                    .unwrap()
            })
            .collect()
    };
    let (four, one) = (losses(&runs), losses(&single_runs));
    assert_eq!(four.len(), 4);
    for (step, (a, b)) in four.iter().zip(&one).enumerate() {
        assert!((a - b).abs() <= 1e-5, "step {}: {a} vs {b}", step + 1);
    }
}
