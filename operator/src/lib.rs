//! The ferrotune operator: reconciles each TrainingJob into a headless Service and one Indexed
//! batch Job (plus its config) per attempt, restarts failed attempts from the newest checkpoint
//! within the restart budget, and reports phase, conditions and training progress in status.
//!
//! The decision ([`plan`]) is a pure function of the TrainingJob and what the cluster shows
//! ([`observe`]); [`controller`] only reads and writes.

pub mod controller;
pub mod desired;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod observe;
pub mod plan;
pub mod render;
