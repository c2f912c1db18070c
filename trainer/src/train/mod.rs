//! The training loop: parameters, optimizer, schedule, checkpoints, metrics, progress.

pub mod clip;
pub mod optim;
pub mod schedule;
