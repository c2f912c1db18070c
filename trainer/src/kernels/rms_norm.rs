//! RMSNorm as Hugging Face's `LlamaRMSNorm` computes it in f32: `y = w · (x · rstd)` with
//! `rstd = 1 / sqrt(mean(x²) + eps)` per row.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::cpu::{self, dims, expect_shape, read};
use super::linalg::{dot, sum_sq};
use super::{KernelError, Result};

/// Rows per partial sum of the weight gradient; fixed so the reduction order never depends on
/// the thread count.
const DW_ROWS: usize = 32;

/// Normalises each row of `x: (N, D)` and scales it by `w: (D)`. Returns `y: (N, D)` and
/// `rstd: (N)`, which the backward needs.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f32) -> Result<(Tensor, Tensor)> {
    const KERNEL: &str = "rms_norm";
    let [n, d] = norm_dims(KERNEL, x, w)?;
    if !(eps >= 0.0 && eps.is_finite()) {
        return Err(KernelError::Argument {
            kernel: KERNEL,
            detail: format!("eps must be >= 0, got {eps}"),
        });
    }
    match x.device() {
        Device::Cpu => {
            let (xs, ws) = (read(KERNEL, "x", x)?, read(KERNEL, "w", w)?);
            let mut y = vec![0.0f32; n * d];
            let mut rstd = vec![0.0f32; n];
            y.par_chunks_mut(d)
                .zip(xs.par_chunks(d))
                .zip(rstd.par_iter_mut())
                .for_each(|((y, x), r)| {
                    *r = 1.0 / (sum_sq(x) / d as f32 + eps).sqrt();
                    for ((y, x), w) in y.iter_mut().zip(x).zip(ws.iter()) {
                        *y = w * (x * *r);
                    }
                });
            Ok((cpu::tensor(y, (n, d))?, cpu::tensor(rstd, n)?))
        }
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => super::cuda::rms_norm(x, w, eps),
        device => Err(cpu::unsupported(KERNEL, device)),
    }
}

/// Gradients of [`rms_norm`] for the upstream gradient `dy: (N, D)`: `dx: (N, D)` and, when
/// `need_dw`, `dw: (D)` (skip it for a frozen norm weight).
pub fn rms_norm_backward(
    x: &Tensor,
    w: &Tensor,
    rstd: &Tensor,
    dy: &Tensor,
    need_dw: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    const KERNEL: &str = "rms_norm_backward";
    let [n, d] = norm_dims(KERNEL, x, w)?;
    expect_shape(KERNEL, "rstd", rstd, &[n])?;
    expect_shape(KERNEL, "dy", dy, &[n, d])?;
    match x.device() {
        Device::Cpu => {
            let (xs, ws) = (read(KERNEL, "x", x)?, read(KERNEL, "w", w)?);
            let (rs, dys) = (read(KERNEL, "rstd", rstd)?, read(KERNEL, "dy", dy)?);
            let mut dx = vec![0.0f32; n * d];
            let block = DW_ROWS * d;
            let partials: Vec<Vec<f32>> = dx
                .par_chunks_mut(block)
                .zip(xs.par_chunks(block))
                .zip(dys.par_chunks(block))
                .zip(rs.par_chunks(DW_ROWS))
                .map(|(((dx, x), dy), r)| {
                    let mut dw = if need_dw { vec![0.0f32; d] } else { Vec::new() };
                    for (((dx, x), dy), &r) in
                        dx.chunks_mut(d).zip(x.chunks(d)).zip(dy.chunks(d)).zip(r)
                    {
                        row_backward(dx, x, dy, &ws, r);
                        if need_dw {
                            for ((acc, x), dy) in dw.iter_mut().zip(x).zip(dy) {
                                *acc += dy * (x * r);
                            }
                        }
                    }
                    dw
                })
                .collect();
            let dw = need_dw.then(|| {
                let mut dw = vec![0.0f32; d];
                for partial in &partials {
                    for (acc, p) in dw.iter_mut().zip(partial) {
                        *acc += p;
                    }
                }
                dw
            });
            Ok((
                cpu::tensor(dx, (n, d))?,
                dw.map(|dw| cpu::tensor(dw, d)).transpose()?,
            ))
        }
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => super::cuda::rms_norm_backward(x, w, rstd, dy, need_dw),
        device => Err(cpu::unsupported(KERNEL, device)),
    }
}

/// `[N, D]` of `x: (N, D)` with a matching `w: (D)` and `D > 0`.
fn norm_dims(kernel: &'static str, x: &Tensor, w: &Tensor) -> Result<[usize; 2]> {
    let [n, d] = dims(kernel, "x", x)?;
    if d == 0 {
        return Err(KernelError::Shape {
            kernel,
            detail: "`x` has rows of width 0".into(),
        });
    }
    expect_shape(kernel, "w", w, &[d])?;
    Ok([n, d])
}

/// One row of `dx = r · (dy ⊙ w) − x · r³ · Σ(dy ⊙ w ⊙ x) / D`.
fn row_backward(dx: &mut [f32], x: &[f32], dy: &[f32], w: &[f32], r: f32) {
    for ((g, dy), w) in dx.iter_mut().zip(dy).zip(w) {
        *g = dy * w;
    }
    let c = r * r * r * dot(dx, x) / x.len() as f32;
    for (g, x) in dx.iter_mut().zip(x) {
        *g = r * *g - x * c;
    }
}
