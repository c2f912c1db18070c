//! The objects of an attempt: rendezvous environment, stable DNS names, gang failure policy,
//! ownership and a locked-down pod; and `render` over every example manifest.

mod common;

use common::training_job;
use ferrotune_operator::desired::{self, AttemptParams};
use std::collections::BTreeMap;

fn params(attempt: u32) -> AttemptParams {
    AttemptParams {
        attempt,
        suspend: false,
        deadline_left: None,
    }
}

#[test]
fn pods_get_rank_world_size_and_rank_zeros_stable_name() {
    let mut tj = training_job();
    tj.spec.parallelism.procs_per_node = 4;
    tj.spec.env.push(k8s_openapi::api::core::v1::EnvVar {
        name: "NCCL_SOCKET_IFNAME".into(),
        value: Some("eth0".into()),
        value_from: None,
    });
    tj.spec.env.push(k8s_openapi::api::core::v1::EnvVar {
        name: "WORLD_SIZE".into(),
        value: Some("1".into()),
        value_from: None,
    });
    let env = desired::env(&tj, 3);
    let plain: BTreeMap<&str, &str> = env
        .iter()
        .filter_map(|e| Some((e.name.as_str(), e.value.as_deref()?)))
        .collect();
    assert_eq!(plain["MASTER_ADDR"], "sum-3-0.sum.ml.svc");
    assert_eq!(plain["MASTER_PORT"], "29500");
    assert_eq!(
        plain["WORLD_SIZE"], "8",
        "the operator's value wins over spec.env"
    );
    assert_eq!(plain["NPROC_PER_NODE"], "4");
    assert_eq!(plain["NCCL_SOCKET_IFNAME"], "eth0");
    assert_eq!(plain["FERROTUNE_PROGRESS_LOG"], "1");
    let rank = env.iter().find(|e| e.name == "NODE_RANK").unwrap();
    let field = &rank
        .value_from
        .as_ref()
        .unwrap()
        .field_ref
        .as_ref()
        .unwrap()
        .field_path;
    assert_eq!(
        field,
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    );
    assert_eq!(env.iter().filter(|e| e.name == "WORLD_SIZE").count(), 1);
}

#[test]
fn the_job_is_indexed_gang_failing_owned_and_locked_down() {
    let tj = training_job();
    let a = desired::attempt(&tj, params(1));
    let spec = a.job.spec.as_ref().unwrap();
    assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
    assert_eq!(
        (spec.completions, spec.parallelism, spec.backoff_limit),
        (Some(2), Some(2), Some(0))
    );
    let rules = &spec.pod_failure_policy.as_ref().unwrap().rules;
    assert!(rules.iter().all(|r| r.action == "FailJob"));
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(
        pod.subdomain.as_deref(),
        Some("sum"),
        "pods resolve as <pod>.<service>"
    );
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.automount_service_account_token, Some(false));
    let c = &pod.containers[0];
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(
        c.command.as_ref().unwrap()[..2],
        ["ferrotune".to_string(), "train".into()]
    );
    let mounts: Vec<&str> = c
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.as_str())
        .collect();
    assert_eq!(
        mounts,
        ["/etc/ferrotune", "/tmp", "/dev/shm", "/runs", "/models"]
    );
    let owner = &a.job.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (
            owner.kind.as_str(),
            owner.controller,
            owner.block_owner_deletion
        ),
        ("TrainingJob", Some(true), Some(true))
    );
    let svc = a.service.spec.unwrap();
    assert_eq!(svc.cluster_ip.as_deref(), Some("None"));
    assert_eq!(svc.publish_not_ready_addresses, Some(true));
    // The config the pods read puts output.dir on the output claim.
    let yaml = &a.config.data.unwrap()["config.yaml"];
    let config =
        ferrotune_config::Config::from_yaml(yaml, std::path::Path::new("config.yaml"), &[])
            .unwrap();
    assert_eq!(config.output.dir, "/runs/run");
}

#[test]
fn render_prints_every_example_and_rejects_a_bad_one_by_field() {
    let bin = env!("CARGO_BIN_EXE_ferrotune-operator");
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/trainingjobs");
    let mut seen = 0;
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let out = std::process::Command::new(bin)
            .args(["render", "-f"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let kinds: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("kind: "))
            .collect();
        assert_eq!(kinds, ["Service", "ConfigMap", "Job"], "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 10, "only {seen} examples");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: ferrotune.dev/v1alpha1\nkind: TrainingJob\nmetadata: {name: x}\nspec:\n  image: ''\n  training: {model: {path: /m.gguf}, data: {train: /d.jsonl}, lora: {r: 0}}\n  storage: {output: {claimName: runs, mountPath: runs}}\n").unwrap();
    let out = std::process::Command::new(bin)
        .args(["render", "-f"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    for needle in [
        "bad.yaml: invalid TrainingJob",
        "spec.image",
        "spec.training.lora.r",
        "spec.storage.output.mountPath: must be an absolute path",
    ] {
        assert!(err.contains(needle), "{needle} not in {err}");
    }
}

#[test]
fn the_hf_token_reaches_the_pod_only_as_a_secret_reference() {
    let mut tj = training_job();
    tj.spec.training.model.path = None;
    tj.spec.training.model.hub = Some("org/model".into());
    tj.spec.storage.hf_token = Some(k8s_openapi::api::core::v1::SecretKeySelector {
        name: "hf".into(),
        key: "token".into(),
        optional: None,
    });
    let env = desired::env(&tj, 1);
    let tokens: Vec<_> = env.iter().filter(|e| e.name == "HF_TOKEN").collect();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].value, None, "no literal value");
    let secret = tokens[0]
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("a secretKeyRef");
    assert_eq!((secret.name.as_str(), secret.key.as_str()), ("hf", "token"));
    // Nothing else the operator creates for the attempt carries the reference's target.
    let a = desired::attempt(&tj, params(1));
    let objects = [
        serde_json::to_string(&a.service).unwrap(),
        serde_json::to_string(&a.config).unwrap(),
        serde_json::to_string(&a.job).unwrap(),
    ]
    .concat();
    assert_eq!(objects.matches("secretKeyRef").count(), 1, "{objects}");
}
