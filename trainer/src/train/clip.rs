//! Gradient clipping by global L2 norm, as `torch.nn.utils.clip_grad_norm_(max_norm, 2)`.
//!
//! Split in two so that distributed ranks can all-reduce their partial [`sum_of_squares`] before
//! taking the square root: `coefficient = clip_coefficient(sum.sqrt(), max_norm)`, which AdamW
//! multiplies every gradient by as it reads it.

use rayon::prelude::*;

/// Elements summed by one rayon task.
const CHUNK: usize = 1 << 16;

/// Sum of the squared gradients, accumulated in f64. Chunks are summed in parallel and their sums
/// added in order, so the result does not depend on the thread count.
pub fn sum_of_squares(grads: &[f32]) -> f64 {
    let partials: Vec<f64> = grads
        .par_chunks(CHUNK)
        .map(|chunk| chunk.iter().map(|&g| f64::from(g) * f64::from(g)).sum())
        .collect();
    partials.iter().sum()
}

/// The factor gradients are multiplied by: `max_norm / (total_norm + 1e-6)`, at most 1, in f32 as
/// torch computes it. A non-finite norm gives a non-finite factor (check the norm first).
pub fn clip_coefficient(total_norm: f64, max_norm: f64) -> f32 {
    let coefficient = (1.0 / (total_norm as f32 + 1e-6_f64 as f32)) * max_norm as f32;
    if coefficient > 1.0 { 1.0 } else { coefficient }
}
