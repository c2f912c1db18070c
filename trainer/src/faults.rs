//! Fault injection for the reliability tests. `FERROTUNE_FAULT=<point>@<step>` makes the process
//! kill itself with SIGKILL when it reaches `point` while saving step `step`, which places a crash
//! exactly where timing cannot: inside a checkpoint write. Unset (always, outside those tests), a
//! point costs one environment lookup per checkpoint.

use std::sync::OnceLock;

/// The variable that arms a fault.
pub const VAR: &str = "FERROTUNE_FAULT";

/// Where a fault can be placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// Every rank's part of the checkpoint is on disk, nothing is committed yet.
    CheckpointParts,
    /// The position file is written in the temporary directory, just before the rename.
    CheckpointCommit,
}

impl Point {
    /// The name `FERROTUNE_FAULT` uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::CheckpointParts => "checkpoint-parts",
            Self::CheckpointCommit => "checkpoint-commit",
        }
    }
}

fn armed() -> Option<&'static (String, u64)> {
    static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let value = std::env::var(VAR).ok()?;
            let (point, step) = value.split_once('@')?;
            Some((point.to_string(), step.parse().ok()?))
        })
        .as_ref()
}

/// Kills this process with SIGKILL if `FERROTUNE_FAULT` names `point` at `step`.
pub fn reach(point: Point, step: u64) {
    if armed().is_some_and(|(p, s)| p == point.name() && *s == step) {
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}
