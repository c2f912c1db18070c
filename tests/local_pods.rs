//! The operator's rendered pods, run as local processes: each pod's command with its
//! environment (downward-API fields resolved, rank 0's DNS name mapped to 127.0.0.1) and its
//! volumes mapped to directories. The real trainer trains, reports progress in its log the way
//! the operator reads it, and writes its outputs onto the "output claim".

mod common;

use common::repo_root;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// Runs pod `index` of the rendered Job; returns (exit success, stderr).
fn run_pod(
    pod: &PodSpec,
    config_map: &BTreeMap<String, String>,
    index: u32,
    mounts: &Mounts,
    host: &Path,
) -> (bool, String) {
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
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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
    let runs = host.path().join("runs");
    let tmp = host.path().join("tmp");
    std::fs::create_dir_all(&runs).unwrap();
    std::fs::create_dir_all(&tmp).unwrap();
    let mounts = Mounts(vec![
        ("/runs".into(), runs.clone()),
        ("/models".into(), repo_root().join("trainer/tests/fixtures")),
        ("/data".into(), repo_root().join("data/quickstart")),
        ("/tmp".into(), tmp),
    ]);
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
