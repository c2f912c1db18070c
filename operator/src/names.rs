//! Names, labels and annotations the operator gives the objects it creates, and the
//! environment it gives the trainer.

use ferrotune_crds::TrainingJob;
use kube::ResourceExt;

/// Field manager for server-side apply and the reporting controller of events.
pub const MANAGER: &str = "ferrotune-operator";
/// Label on every object of a TrainingJob: its name.
pub const JOB_LABEL: &str = "ferrotune.dev/trainingjob";
/// Label on a batch Job, its ConfigMap and its pods: the attempt, from 1.
pub const ATTEMPT_LABEL: &str = "ferrotune.dev/attempt";
/// Kueue's queue label on a batch Job.
pub const KUEUE_QUEUE_LABEL: &str = "kueue.x-k8s.io/queue-name";
/// Annotation the Job controller sets on each pod of an Indexed Job: its index (= node rank).
pub const COMPLETION_INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
/// Name of the trainer container.
pub const CONTAINER: &str = "trainer";
/// Where the rendered training config is mounted.
pub const CONFIG_DIR: &str = "/etc/ferrotune";
/// The config file's name in its ConfigMap and mount.
pub const CONFIG_FILE: &str = "config.yaml";
/// Longest TrainingJob name: `<name>-<attempt>-<index>` must stay a DNS label (63 characters).
pub const MAX_NAME_LEN: usize = 48;

/// The headless Service giving each pod a stable DNS name.
pub fn service_name(job: &TrainingJob) -> String {
    job.name_any()
}

/// The batch Job (and its ConfigMap) of one attempt.
pub fn attempt_name(job: &TrainingJob, attempt: u32) -> String {
    format!("{}-{attempt}", job.name_any())
}

/// The namespace, `default` when the manifest names none.
pub fn namespace(job: &TrainingJob) -> String {
    job.namespace().unwrap_or_else(|| "default".into())
}

/// Rank 0's stable DNS name in one attempt: `<job>-0.<service>.<namespace>.svc`.
pub fn master_addr(job: &TrainingJob, attempt: u32) -> String {
    format!(
        "{}-0.{}.{}.svc",
        attempt_name(job, attempt),
        service_name(job),
        namespace(job)
    )
}
