//! The optimizer's kernels over flat f32 buffers on the GPU, updated in place: gradient
//! accumulation, the squared norm, AdamW.

use candle_core::{DType, Tensor};

use super::{Elem, Launch, THREADS, by_dtype, device};
use crate::kernels::{AdamWStep, KernelError, Result};

/// Blocks of the squared-norm kernel: fixed, so its summation order (and result) depends on the
/// buffer's length only.
const NORM_BLOCKS: usize = 1024;

/// Checks that `t` is a contiguous f32 buffer of at least `end` elements on the GPU.
pub(super) fn flat_f32(
    kernel: &'static str,
    name: &'static str,
    t: &Tensor,
    end: usize,
) -> Result<()> {
    device(kernel, name, t)?;
    if t.dtype() != DType::F32 || !t.is_contiguous() || t.elem_count() < end {
        return Err(KernelError::Cuda(format!(
            "{kernel}: {name} must be a contiguous f32 buffer of at least {end} elements, got \
             {:?} {:?}",
            t.dtype(),
            t.dims()
        )));
    }
    Ok(())
}

/// `dst[offset..offset + n] += src` (any shape of `n` elements, f32 or bf16).
pub(in crate::kernels) fn accumulate(dst: &Tensor, offset: usize, src: &Tensor) -> Result<()> {
    flat_f32("accumulate", "dst", dst, offset + src.elem_count())?;
    by_dtype!("accumulate", "src", src, accumulate_t(dst, offset, src))
}

fn accumulate_t<T: Elem>(dst: &Tensor, offset: usize, src: &Tensor) -> Result<()> {
    let dev = device("accumulate", "src", src)?;
    let n = src.elem_count();
    Launch::typed::<T>(dev, "accumulate")
        .tensor(dst)?
        .u64(offset as u64)
        .tensor(src)?
        .u64(n as u64)
        .run_elems(n)
}

/// Sets every element of `x` to zero.
pub(in crate::kernels) fn zero(x: &Tensor) -> Result<()> {
    flat_f32("zero", "x", x, 0)?;
    let n = x.elem_count();
    Launch::new(device("zero", "x", x)?, "zero_f32")
        .tensor(x)?
        .u64(n as u64)
        .run_elems(n)
}

/// `Σ x²`, accumulated in f64 in an order fixed by the length of `x`.
pub(in crate::kernels) fn sum_of_squares(x: &Tensor) -> Result<f64> {
    flat_f32("sum_of_squares", "x", x, 0)?;
    let dev = device("sum_of_squares", "x", x)?;
    let n = x.elem_count();
    if n == 0 {
        return Ok(0.0);
    }
    let partial = Tensor::zeros(
        NORM_BLOCKS,
        DType::F64,
        &candle_core::Device::Cuda(dev.clone()),
    )?;
    Launch::new(dev, "sum_squares_f32")
        .tensor(x)?
        .u64(n as u64)
        .tensor(&partial)?
        .run((NORM_BLOCKS as u32, 1), THREADS)?;
    Ok(partial.to_vec1::<f64>()?.iter().sum())
}

/// One AdamW step of `p[range]` with `g`, `m` and `v` (flat f32 buffers of one length), in place,
/// writing the updated values rounded to bf16 into `shadow` (a bf16 buffer of that length) too.
pub(in crate::kernels) fn adamw(
    p: &Tensor,
    shadow: Option<&Tensor>,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
    range: std::ops::Range<usize>,
    s: &AdamWStep,
) -> Result<()> {
    let n = p.elem_count();
    for (name, t) in [("p", p), ("g", g), ("m", m), ("v", v)] {
        flat_f32("adamw", name, t, range.end)?;
        if t.elem_count() != n {
            return Err(KernelError::Cuda(format!(
                "adamw: {name} has {} elements, p has {n}",
                t.elem_count()
            )));
        }
    }
    let launch = Launch::new(device("adamw", "p", p)?, "adamw_f32").tensor(p)?;
    let launch = match shadow {
        Some(t) => {
            device("adamw", "shadow", t)?;
            if t.dtype() != DType::BF16 || !t.is_contiguous() || t.elem_count() != n {
                return Err(KernelError::Cuda(format!(
                    "adamw: shadow must be a contiguous bf16 buffer of {n} elements, got {:?} {:?}",
                    t.dtype(),
                    t.dims()
                )));
            }
            launch.tensor(t)?
        }
        None => launch.null(),
    };
    launch
        .tensor(g)?
        .tensor(m)?
        .tensor(v)?
        .u64(range.start as u64)
        .u64(range.len() as u64)
        .float(s.grad_scale)
        .float(s.decay_factor)
        .float(s.lerp_weight)
        .float(1.0 - s.lerp_weight)
        .int(usize::from(s.lerp_weight < 0.5))?
        .float(s.beta2)
        .float(s.one_minus_beta2)
        .float(s.bias_correction2_sqrt)
        .float(s.eps)
        .float(s.neg_step_size)
        .run_elems(range.len())
}
