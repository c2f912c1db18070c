//! The objects a TrainingJob's attempt is made of, as a pure function of its spec: a headless
//! Service (stable pod DNS names), a ConfigMap with the trainer config, and an Indexed batch Job
//! whose completion index is the node rank.

use ferrotune_crds::TrainingJob;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, EnvVar, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::names::{self, ATTEMPT_LABEL, CONTAINER, JOB_LABEL, KUEUE_QUEUE_LABEL};

/// Seconds a pod has after SIGTERM (preemption, suspend) to write its checkpoint.
pub const GRACE_SECONDS: i64 = 120;

/// Everything one attempt needs, in the order it is created.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// Headless Service shared by all attempts.
    pub service: Service,
    /// The training config of this attempt.
    pub config: ConfigMap,
    /// The Indexed Job running one pod per node.
    pub job: Job,
}

/// What shapes an attempt besides the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptParams {
    /// The attempt, from 1.
    pub attempt: u32,
    /// Create the Job suspended (TrainingJob suspended, or waiting for Kueue).
    pub suspend: bool,
    /// Seconds left of `runPolicy.activeDeadlineSeconds`.
    pub deadline_left: Option<u64>,
}

/// The objects of one attempt.
pub fn attempt(job: &TrainingJob, params: AttemptParams) -> Attempt {
    Attempt {
        service: service(job),
        config: config_map(job, params.attempt),
        job: batch_job(job, params),
    }
}

fn owner(job: &TrainingJob) -> Option<Vec<OwnerReference>> {
    // A manifest that was never stored (render) has no uid, so nothing can own by it yet.
    job.uid()?;
    job.controller_owner_ref(&()).map(|mut o| {
        o.block_owner_deletion = Some(true);
        vec![o]
    })
}

fn labels(job: &TrainingJob, attempt: Option<u32>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (JOB_LABEL.to_string(), job.name_any()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            names::MANAGER.to_string(),
        ),
    ]);
    if let Some(a) = attempt {
        labels.insert(ATTEMPT_LABEL.into(), a.to_string());
    }
    labels
}

fn metadata(job: &TrainingJob, name: String, attempt: Option<u32>) -> Value {
    json!({
        "name": name,
        "namespace": names::namespace(job),
        "labels": labels(job, attempt),
        "ownerReferences": owner(job),
    })
}

fn typed<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("the operator builds well-formed objects")
}

/// The headless Service: every pod gets `<job>-<attempt>-<rank>.<service>` as its DNS name,
/// published before the pod is ready so workers can find rank 0 while it loads the model.
pub fn service(job: &TrainingJob) -> Service {
    typed(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(job, names::service_name(job), None),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": true,
            "selector": {JOB_LABEL: job.name_any()},
            "ports": [{"name": "rendezvous", "port": job.spec.parallelism.master_port}],
        }
    }))
}

/// The trainer config as the pods read it: `output.dir` placed on the output volume.
pub fn training_config(job: &TrainingJob) -> ferrotune_config::Config {
    let mut config = job.spec.training.clone();
    let dir = std::path::Path::new(&config.output.dir);
    if dir.is_relative() {
        config.output.dir = std::path::Path::new(&job.spec.storage.output.mount_path)
            .join(dir)
            .to_string_lossy()
            .into_owned();
    }
    config
}

/// The ConfigMap holding one attempt's `config.yaml`.
pub fn config_map(job: &TrainingJob, attempt: u32) -> ConfigMap {
    typed(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(job, names::attempt_name(job, attempt), Some(attempt)),
        "data": {names::CONFIG_FILE: training_config(job).to_yaml()},
    }))
}

/// The trainer's environment: rendezvous, ranks, NCCL, progress reporting, the Hub token.
pub fn env(job: &TrainingJob, attempt: u32) -> Vec<EnvVar> {
    let p = &job.spec.parallelism;
    let output = &job.spec.storage.output.mount_path;
    let plain = |name: &str, value: String| EnvVar {
        name: name.into(),
        value: Some(value),
        value_from: None,
    };
    let mut env = vec![
        plain("MASTER_ADDR", names::master_addr(job, attempt)),
        plain("MASTER_PORT", p.master_port.to_string()),
        plain("WORLD_SIZE", p.world_size().to_string()),
        plain("NPROC_PER_NODE", p.procs_per_node.to_string()),
        plain("NNODES", p.nodes.to_string()),
        typed(json!({
            "name": "NODE_RANK",
            "valueFrom": {"fieldRef": {"fieldPath":
                format!("metadata.annotations['{}']", names::COMPLETION_INDEX_ANNOTATION)}},
        })),
        plain("FERROTUNE_ATTEMPT", attempt.to_string()),
        plain(ferrotune_config::progress::PROGRESS_LOG_ENV, "1".into()),
        plain("HF_HOME", format!("{output}/.cache/huggingface")),
        plain("NCCL_DEBUG", "WARN".into()),
        plain("TMPDIR", "/tmp".into()),
    ];
    if let Some(token) = &job.spec.storage.hf_token {
        env.push(typed(
            json!({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": token}}),
        ));
    }
    let ours: Vec<String> = env.iter().map(|e| e.name.clone()).collect();
    env.extend(
        job.spec
            .env
            .iter()
            .filter(|e| !ours.contains(&e.name))
            .cloned(),
    );
    env
}

fn volumes(job: &TrainingJob, attempt: u32) -> (Vec<Value>, Vec<Value>) {
    let storage = &job.spec.storage;
    let mut volumes = vec![
        json!({"name": "config", "configMap": {"name": names::attempt_name(job, attempt)}}),
        json!({"name": "tmp", "emptyDir": {}}),
        json!({"name": "dshm", "emptyDir": {"medium": "Memory"}}),
    ];
    let mut mounts = vec![
        json!({"name": "config", "mountPath": names::CONFIG_DIR, "readOnly": true}),
        json!({"name": "tmp", "mountPath": "/tmp"}),
        json!({"name": "dshm", "mountPath": "/dev/shm"}),
    ];
    let claims = std::iter::once(("output".to_string(), &storage.output)).chain(
        storage
            .volumes
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("volume-{i}"), v)),
    );
    for (name, claim) in claims {
        volumes.push(json!({"name": name, "persistentVolumeClaim": {
            "claimName": claim.claim_name, "readOnly": claim.read_only}}));
        mounts.push(json!({"name": name, "mountPath": claim.mount_path,
            "readOnly": claim.read_only}));
    }
    (volumes, mounts)
}

/// The Indexed Job of one attempt: one pod per node, any failed pod fails the attempt (gang
/// semantics), restarts are the operator's.
pub fn batch_job(job: &TrainingJob, params: AttemptParams) -> Job {
    let spec = &job.spec;
    let nodes = spec.parallelism.nodes;
    let name = names::attempt_name(job, params.attempt);
    let (volumes, mounts) = volumes(job, params.attempt);
    let mut meta = metadata(job, name, Some(params.attempt));
    if let Some(queue) = &spec.scheduling.queue_name {
        meta["labels"][KUEUE_QUEUE_LABEL] = json!(queue);
    }
    let placement = &spec.placement;
    let container = json!({
        "name": CONTAINER,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["ferrotune", "train", "--config",
            format!("{}/{}", names::CONFIG_DIR, names::CONFIG_FILE)],
        "env": env(job, params.attempt),
        "resources": spec.resources,
        "ports": [{"name": "rendezvous", "containerPort": spec.parallelism.master_port}],
        "volumeMounts": mounts,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "runAsNonRoot": true,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    });
    typed(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "completionMode": "Indexed",
            "completions": nodes,
            "parallelism": nodes,
            "backoffLimit": 0,
            "suspend": params.suspend,
            "activeDeadlineSeconds": params.deadline_left,
            "podFailurePolicy": {"rules": [
                {"action": "FailJob", "onExitCodes": {
                    "containerName": CONTAINER, "operator": "NotIn", "values": [0]}},
                {"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget"}]},
            ]},
            "template": {
                "metadata": {"labels": labels(job, Some(params.attempt))},
                "spec": {
                    "restartPolicy": "Never",
                    "subdomain": names::service_name(job),
                    "enableServiceLinks": false,
                    "automountServiceAccountToken": false,
                    "terminationGracePeriodSeconds": GRACE_SECONDS,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": 65532,
                        "runAsGroup": 65532,
                        "fsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": volumes,
                    "nodeSelector": placement.node_selector,
                    "tolerations": placement.tolerations,
                    "affinity": placement.affinity,
                    "priorityClassName": placement.priority_class_name,
                    "serviceAccountName": placement.service_account_name,
                    "imagePullSecrets": placement.image_pull_secrets,
                    "schedulerName": spec.scheduling.scheduler_name,
                },
            },
        }
    }))
}
