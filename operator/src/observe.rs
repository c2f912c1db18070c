//! Reading what the cluster shows of an attempt: which attempt a batch Job is, whether it
//! finished, and why its first failed pod failed.

use ferrotune_crds::Failure;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;

use crate::names::{ATTEMPT_LABEL, COMPLETION_INDEX_ANNOTATION, CONTAINER};

/// How a batch Job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// Every index succeeded.
    Complete,
    /// The Job failed, with Kubernetes' reason and message.
    Failed {
        /// e.g. `PodFailurePolicy`, `DeadlineExceeded`, `BackoffLimitExceeded`.
        reason: String,
        /// Kubernetes' message.
        message: String,
    },
}

/// The attempt a batch Job belongs to, from its label.
pub fn attempt_of(job: &Job) -> Option<u32> {
    job.metadata
        .labels
        .as_ref()?
        .get(ATTEMPT_LABEL)?
        .parse()
        .ok()
}

/// Whether and how the Job finished.
pub fn finished(job: &Job) -> Option<Finished> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    let is = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
    };
    if is("Complete").is_some() {
        return Some(Finished::Complete);
    }
    is("Failed").map(|c| Finished::Failed {
        reason: c.reason.clone().unwrap_or_default(),
        message: c.message.clone().unwrap_or_default(),
    })
}

/// A pod's node rank (its completion index).
pub fn rank_of(pod: &Pod) -> Option<u32> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(COMPLETION_INDEX_ANNOTATION)?
        .parse()
        .ok()
}

/// The failure of the pod that failed first: rank, exit code, reason (`OOMKilled`, `Error`,
/// or the disruption that evicted it) and the trainer's last words.
pub fn first_failure(attempt: u32, pods: &[Pod]) -> Option<Failure> {
    pods.iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"))
        .filter_map(|pod| {
            let status = pod.status.as_ref()?;
            let terminated = status
                .container_statuses
                .iter()
                .flatten()
                .find(|c| c.name == CONTAINER)
                .and_then(|c| c.state.as_ref()?.terminated.clone());
            let disruption = status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "DisruptionTarget" && c.status == "True");
            let at = terminated.as_ref().and_then(|t| t.finished_at.clone());
            let failure = Failure {
                attempt,
                node_rank: rank_of(pod),
                exit_code: terminated.as_ref().map(|t| t.exit_code),
                reason: disruption
                    .and_then(|c| c.reason.clone())
                    .or_else(|| terminated.as_ref().and_then(|t| t.reason.clone()))
                    .or_else(|| status.reason.clone()),
                message: terminated
                    .as_ref()
                    .and_then(|t| t.message.clone())
                    .or_else(|| disruption.and_then(|c| c.message.clone()))
                    .or_else(|| status.message.clone())
                    .map(|m| last_lines(&m, 5)),
            };
            Some((at.map(|t| t.0), failure))
        })
        .min_by_key(|(at, f)| (*at, f.node_rank))
        .map(|(_, f)| f)
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
