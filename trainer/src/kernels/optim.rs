//! The optimizer's kernels over flat f32 buffers that live on a GPU and are updated in place:
//! adding a micro-batch's gradient into the flat gradient buffer, zeroing it, its squared norm,
//! and the AdamW update. On the CPU the trainer keeps these buffers as `Vec<f32>` and updates them
//! directly (`train::optim`), so only the GPU path exists here; it computes what the CPU path
//! computes, bit for bit (AdamW, accumulation) or to f64 rounding (the norm).

use std::ops::Range;

use candle_core::Tensor;

use super::Result;
use super::cpu::unsupported;

/// One AdamW step's scalars for one range of elements, each an f32 as the update uses it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWStep {
    /// Multiplies each gradient first (the clipping coefficient; 1 to leave it).
    pub grad_scale: f32,
    /// Multiplies each parameter: `1 − lr·wd` where weight decay applies, else 1.
    pub decay_factor: f32,
    /// `1 − β1`, the weight of the first moment's lerp towards the gradient.
    pub lerp_weight: f32,
    /// Decay rate of the second moment.
    pub beta2: f32,
    /// `1 − β2`.
    pub one_minus_beta2: f32,
    /// `√(1 − β2^t)`.
    pub bias_correction2_sqrt: f32,
    /// Added to the denominator.
    pub eps: f32,
    /// `−lr / (1 − β1^t)`.
    pub neg_step_size: f32,
}

/// `dst[offset..offset + src.elem_count()] += src` for a flat f32 `dst` and an f32 or bf16 `src`.
pub fn accumulate(dst: &Tensor, offset: usize, src: &Tensor) -> Result<()> {
    match dst.device() {
        #[cfg(feature = "cuda")]
        candle_core::Device::Cuda(_) => super::cuda::accumulate(dst, offset, src),
        device => {
            let _ = (offset, src);
            Err(unsupported("accumulate", device))
        }
    }
}

/// Sets every element of the f32 buffer `x` to zero.
pub fn zero(x: &Tensor) -> Result<()> {
    match x.device() {
        #[cfg(feature = "cuda")]
        candle_core::Device::Cuda(_) => super::cuda::zero(x),
        device => Err(unsupported("zero", device)),
    }
}

/// `Σ x²` over the f32 buffer `x`, accumulated in f64 in an order fixed by its length.
pub fn sum_of_squares(x: &Tensor) -> Result<f64> {
    match x.device() {
        #[cfg(feature = "cuda")]
        candle_core::Device::Cuda(_) => super::cuda::sum_of_squares(x),
        device => Err(unsupported("sum_of_squares", device)),
    }
}

/// One AdamW step, in place, of the elements `range` of the parameters `p` with gradients `g`,
/// first moments `m` and second moments `v` (flat f32 buffers of one length). With `shadow` (a
/// flat bf16 buffer of that length: the model's weights) the updated values are also written
/// there, rounded to bf16, in the same pass.
pub fn adamw(
    p: &Tensor,
    shadow: Option<&Tensor>,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
    range: Range<usize>,
    step: &AdamWStep,
) -> Result<()> {
    match p.device() {
        #[cfg(feature = "cuda")]
        candle_core::Device::Cuda(_) => super::cuda::adamw(p, shadow, g, m, v, range, step),
        device => {
            let _ = (shadow, g, m, v, range, step);
            Err(unsupported("adamw", device))
        }
    }
}
