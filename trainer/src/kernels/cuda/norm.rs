//! RMSNorm on the GPU: one block per row; the weight gradient as fixed row chunks summed in order.

use candle_core::{DType, Tensor};

use super::{Elem, Launch, THREADS, by_dtype, device, output, rows, zeros};
use crate::kernels::Result;

/// Rows per partial sum of the weight gradient (fixed: the reduction order depends on the shape
/// only).
const DW_ROWS: usize = 64;

/// `(y, rstd)` of `x: (N, D)` normalised and scaled by `w: (D)` (shapes checked by the caller).
pub(in crate::kernels) fn rms_norm(x: &Tensor, w: &Tensor, eps: f32) -> Result<(Tensor, Tensor)> {
    by_dtype!("rms_norm", "x", x, forward(x, w, eps))
}

fn forward<T: Elem>(x: &Tensor, w: &Tensor, eps: f32) -> Result<(Tensor, Tensor)> {
    let dev = device("rms_norm", "x", x)?;
    let (n, d) = x.dims2()?;
    let y = output::<T>(dev, (n, d))?;
    let rstd = output::<f32>(dev, n)?;
    Launch::typed::<T>(dev, "rms_norm")
        .tensor(x)?
        .tensor(&w.to_dtype(T::DTYPE)?)?
        .tensor(&y)?
        .tensor(&rstd)?
        .int(d)?
        .float(eps)
        .run(rows(n)?, THREADS)?;
    Ok((y, rstd))
}

/// `(dx, dw)` of [`rms_norm`] for `dy`; `dw` (f32) only when `need_dw`.
pub(in crate::kernels) fn rms_norm_backward(
    x: &Tensor,
    w: &Tensor,
    rstd: &Tensor,
    dy: &Tensor,
    need_dw: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    by_dtype!(
        "rms_norm_backward",
        "x",
        x,
        backward(x, w, rstd, dy, need_dw)
    )
}

fn backward<T: Elem>(
    x: &Tensor,
    w: &Tensor,
    rstd: &Tensor,
    dy: &Tensor,
    need_dw: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let dev = device("rms_norm_backward", "x", x)?;
    let (n, d) = x.dims2()?;
    let dy = dy.to_dtype(T::DTYPE)?;
    let rstd = rstd.to_dtype(DType::F32)?;
    let dx = output::<T>(dev, (n, d))?;
    Launch::typed::<T>(dev, "rms_norm_dx")
        .tensor(x)?
        .tensor(&w.to_dtype(T::DTYPE)?)?
        .tensor(&rstd)?
        .tensor(&dy)?
        .tensor(&dx)?
        .int(d)?
        .run(rows(n)?, THREADS)?;
    if !need_dw {
        return Ok((dx, None));
    }
    let chunks = n.div_ceil(DW_ROWS).max(1);
    let col_blocks = d.div_ceil(THREADS as usize) as u32;
    let partial = output::<f32>(dev, (chunks, d))?;
    if n == 0 {
        return Ok((dx, Some(zeros::<f32>(dev, d)?)));
    }
    Launch::typed::<T>(dev, "rms_norm_dw_partial")
        .tensor(x)?
        .tensor(&rstd)?
        .tensor(&dy)?
        .tensor(&partial)?
        .int(n)?
        .int(d)?
        .int(DW_ROWS)?
        .run((col_blocks, chunks as u32), THREADS)?;
    let dw = output::<f32>(dev, d)?;
    Launch::new(dev, "sum_chunks_f32")
        .tensor(&partial)?
        .tensor(&dw)?
        .int(chunks)?
        .int(d)?
        .run((col_blocks, 1), THREADS)?;
    Ok((dx, Some(dw)))
}
