//! Training progress as the trainer reports it (rank 0) and the operator shows it in a
//! TrainingJob's status: one small JSON document, shared by both sides.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Environment variable that, set to `1`, makes rank 0 also print each [`Progress`] to stderr as
/// one line: [`PROGRESS_LOG_PREFIX`] followed by the JSON. The operator reads those lines from
/// the pod's log, so progress reaches a TrainingJob's status without any extra server.
pub const PROGRESS_LOG_ENV: &str = "FERROTUNE_PROGRESS_LOG";

/// Start of a progress line in the trainer's log.
pub const PROGRESS_LOG_PREFIX: &str = "FERROTUNE_PROGRESS ";

impl Progress {
    /// The newest progress line in a log, if any.
    pub fn last_in_log(log: &str) -> Option<Progress> {
        log.lines()
            .rev()
            .filter_map(|line| line.strip_prefix(PROGRESS_LOG_PREFIX))
            .find_map(|json| serde_json::from_str(json).ok())
    }
}

/// Environment variable naming a file the trainer rewrites (atomically) with its latest
/// [`Progress`] as JSON, for whoever watches the run.
pub const PROGRESS_FILE_ENV: &str = "FERROTUNE_PROGRESS_FILE";

/// What a run is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub enum RunPhase {
    /// Loading the model and data.
    #[default]
    Loading,
    /// Optimising.
    Training,
    /// Generating and scoring.
    Evaluating,
    /// Writing adapters or the model.
    Exporting,
    /// Finished.
    Done,
}

/// A snapshot of a run's progress.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// What the run is doing.
    pub phase: RunPhase,
    /// Optimizer steps done.
    pub step: u64,
    /// Optimizer steps in the whole run.
    pub total_steps: u64,
    /// Mean loss over the last logging window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// Training tokens per second over the last logging window (all ranks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_second: Option<f64>,
    /// Estimated seconds until training ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<u64>,
    /// Step of the newest complete checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checkpoint_step: Option<u64>,
}
