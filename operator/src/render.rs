//! `render`: the objects the controller would create for a manifest, as YAML documents.

use std::path::Path;

use ferrotune_crds::TrainingJob;

use crate::desired::{self, AttemptParams};

/// Reads a TrainingJob manifest, naming the file and the field on error.
pub fn load(path: &Path) -> anyhow::Result<TrainingJob> {
    Ok(ferrotune_crds::manifest::load(path)?)
}

/// The Service, ConfigMap and Job of the first attempt (or `attempt`), as YAML documents.
pub fn render(job: &TrainingJob, attempt: u32) -> String {
    let objects = desired::attempt(
        job,
        AttemptParams {
            attempt,
            suspend: job.spec.run_policy.suspend || job.spec.scheduling.queue_name.is_some(),
            deadline_left: job.spec.run_policy.active_deadline_seconds,
        },
    );
    [
        serde_saphyr::to_string(&objects.service),
        serde_saphyr::to_string(&objects.config),
        serde_saphyr::to_string(&objects.job),
    ]
    .into_iter()
    .map(|doc| doc.expect("Kubernetes objects always serialise"))
    .collect::<Vec<_>>()
    .join("---\n")
}
