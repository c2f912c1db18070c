//! The training loop: parameters, optimizer, schedule, checkpoints, metrics, progress.
