//! Builders for the objects the operator tests reason about.
#![allow(dead_code)]

use ferrotune_crds::TrainingJob;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

/// A two-node CPU TrainingJob as the API server stores it (with uid and generation).
pub fn training_job() -> TrainingJob {
    serde_saphyr::from_str(
        r#"
apiVersion: ferrotune.dev/v1alpha1
kind: TrainingJob
metadata: {name: sum, namespace: ml, uid: 11111111-2222-3333-4444-555555555555, generation: 1}
spec:
  image: ferrotune:cpu
  parallelism: {nodes: 2, procsPerNode: 1}
  training:
    model: {path: /models/smollm2.gguf}
    data: {train: /data/train.jsonl}
    output: {dir: run}
  storage:
    output: {claimName: runs, mountPath: /runs}
    volumes: [{claimName: models, mountPath: /models, readOnly: true}]
  runPolicy: {backoffLimit: 2}
"#,
    )
    .unwrap()
}

/// The attempt's batch Job as the Job controller reports it.
pub fn job(attempt: u32, active: i32, condition: Option<(&str, &str)>) -> Job {
    let conditions: Vec<_> = condition
        .map(|(kind, reason)| json!({"type": kind, "status": "True", "reason": reason, "message": "m"}))
        .into_iter()
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": format!("sum-{attempt}"), "namespace": "ml",
            "labels": {"ferrotune.dev/trainingjob": "sum", "ferrotune.dev/attempt": attempt.to_string()},
            "ownerReferences": [{"apiVersion": "ferrotune.dev/v1alpha1", "kind": "TrainingJob",
                "name": "sum", "uid": "11111111-2222-3333-4444-555555555555", "controller": true}]},
        "spec": {"template": {}, "suspend": false},
        "status": {"active": active, "ready": active, "conditions": conditions},
    }))
    .unwrap()
}

/// A pod of attempt `attempt` with node rank `rank` that ended with `exit_code` (`reason` as
/// the kubelet reports it).
pub fn failed_pod(attempt: u32, rank: u32, exit_code: i32, reason: &str, message: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("sum-{attempt}-{rank}-x"), "namespace": "ml",
            "labels": {"ferrotune.dev/trainingjob": "sum", "ferrotune.dev/attempt": attempt.to_string()},
            "annotations": {"batch.kubernetes.io/job-completion-index": rank.to_string()}},
        "status": {"phase": "Failed", "containerStatuses": [{
            "name": "trainer", "image": "ferrotune:cpu", "imageID": "", "ready": false,
            "restartCount": 0,
            "state": {"terminated": {"exitCode": exit_code, "reason": reason, "message": message,
                "finishedAt": "2026-12-06T04:00:00Z"}}}]},
    }))
    .unwrap()
}
