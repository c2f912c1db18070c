//! The training loop: parameters, optimizer, schedule, checkpoints, metrics, progress.

pub mod checkpoint;
pub mod clip;
pub mod metrics;
pub mod optim;
pub mod params;
pub mod progress;
pub mod schedule;
pub mod signals;
