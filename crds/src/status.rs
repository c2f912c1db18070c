//! `status` of a TrainingJob: phase, conditions, workers, attempts, training progress as the
//! trainer reports it, and why an attempt failed.

use ferrotune_config::progress::Progress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the operator observed of a TrainingJob.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrainingJobStatus {
    /// Where the job stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Kubernetes-style conditions: Created, Running, Restarting, Suspended, Succeeded, Failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Pods of the current attempt that are ready.
    #[serde(default)]
    pub workers_ready: u32,
    /// Pods of the current attempt that are running.
    #[serde(default)]
    pub workers_active: u32,
    /// The current attempt, from 1.
    #[serde(default)]
    pub attempt: u32,
    /// Failed attempts so far (never reset).
    #[serde(default)]
    pub restart_count: u32,
    /// Training progress reported by rank 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<Failure>,
    /// When the first attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the job succeeded or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Where a TrainingJob stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// Objects created, pods not all running yet.
    Pending,
    /// Every pod of the current attempt is running.
    Running,
    /// An attempt failed; the next one is starting.
    Restarting,
    /// Suspended: no pods run.
    Suspended,
    /// Training and evaluation finished.
    Succeeded,
    /// The restart budget or the deadline is spent.
    Failed,
}

/// A failed attempt: which rank, how it ended, and what it said.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// The attempt that failed.
    pub attempt: u32,
    /// Node rank of the pod that failed first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_rank: Option<u32>,
    /// Its trainer container's exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Kubernetes' reason (`OOMKilled`, `Error`, `DeadlineExceeded`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The trainer's last error line (its termination message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
