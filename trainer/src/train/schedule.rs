//! Learning-rate schedules with linear warm-up, as transformers' `get_cosine_schedule_with_warmup`,
//! `get_linear_schedule_with_warmup` and `get_constant_schedule_with_warmup` compute them and
//! Hugging Face's Trainer steps them: optimizer step `s` (0-based) uses `base_lr · λ(s)`, so with
//! warm-up the first step's rate is 0.

use std::f64::consts::PI;

use ferrotune_config::Schedule;

/// The learning rate of optimizer step `step` (0-based) in a run of `total` steps whose first
/// `warmup` steps ramp up linearly.
pub fn learning_rate(schedule: Schedule, base_lr: f64, warmup: u64, total: u64, step: u64) -> f64 {
    base_lr * multiplier(schedule, warmup, total, step)
}

/// λ(step): the fraction of the base rate.
fn multiplier(schedule: Schedule, warmup: u64, total: u64, step: u64) -> f64 {
    if step < warmup {
        return step as f64 / warmup.max(1) as f64;
    }
    // Steps after warm-up, over the steps after warm-up (at least 1), as transformers counts.
    let decay_span = total.saturating_sub(warmup).max(1) as f64;
    match schedule {
        Schedule::Constant => 1.0,
        Schedule::Linear => (0.0f64).max((total as f64 - step as f64) / decay_span),
        Schedule::Cosine => {
            let progress = (step - warmup) as f64 / decay_span;
            // transformers computes cos(π · num_cycles · 2 · progress) with num_cycles = 0.5.
            (0.0f64).max(0.5 * (1.0 + (PI * progress).cos()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_starts_at_zero_and_reaches_the_peak() {
        for schedule in [Schedule::Cosine, Schedule::Linear, Schedule::Constant] {
            assert_eq!(learning_rate(schedule, 2e-4, 10, 100, 0), 0.0);
            assert_eq!(learning_rate(schedule, 2e-4, 10, 100, 5), 1e-4);
            assert_eq!(learning_rate(schedule, 2e-4, 10, 100, 10), 2e-4);
        }
        assert_eq!(learning_rate(Schedule::Cosine, 2e-4, 0, 100, 0), 2e-4);
    }

    #[test]
    fn decays_reach_zero_at_the_end() {
        assert_eq!(learning_rate(Schedule::Linear, 1.0, 10, 110, 60), 0.5);
        assert_eq!(learning_rate(Schedule::Linear, 1.0, 10, 110, 110), 0.0);
        assert!((learning_rate(Schedule::Cosine, 1.0, 10, 110, 60) - 0.5).abs() < 1e-15);
        assert!(learning_rate(Schedule::Cosine, 1.0, 10, 110, 110) < 1e-15);
        assert_eq!(learning_rate(Schedule::Constant, 1.0, 10, 110, 109), 1.0);
    }
}
