//! The LM head fused with cross-entropy on the GPU, a chunk of target rows at a time: the chunk's
//! logits (in the compute dtype) are the only vocabulary-wide tensor, and one kernel turns them
//! into the row losses and, in place, into their gradient.

use candle_core::Tensor;

use super::{Elem, Launch, THREADS, by_dtype, device, output, rows, upload, zeros};
use crate::kernels::Result;
use crate::kernels::lm_head_loss::{HeadGrad, LmHeadLoss};

/// Logit elements per chunk (rows × vocabulary): 64 Mi, 128 MiB in bf16.
const CHUNK_ELEMS: usize = 1 << 26;

/// The same when the weight gradient is wanted: twice as many rows, so its f32 `(V, D)`
/// accumulator is read and written half as often.
const CHUNK_ELEMS_DW: usize = 1 << 27;

/// [`crate::kernels::lm_head_loss`] for `h: (N, D)` and `w: (V, D)` on the GPU; `rows` are the
/// rows with a target (checked by the caller).
pub(in crate::kernels) fn lm_head_loss(
    h: &Tensor,
    w: &Tensor,
    targets: &[i32],
    target_rows: &[u32],
    grad_scale: f32,
    dw: HeadGrad,
) -> Result<LmHeadLoss> {
    by_dtype!(
        "lm_head_loss",
        "h",
        h,
        on_gpu(h, w, targets, target_rows, grad_scale, dw)
    )
}

fn on_gpu<T: Elem>(
    h: &Tensor,
    w: &Tensor,
    targets: &[i32],
    target_rows: &[u32],
    grad_scale: f32,
    dw_to: HeadGrad,
) -> Result<LmHeadLoss> {
    let dev = device("lm_head_loss", "h", h)?;
    let (n, d) = h.dims2()?;
    let (vocab, _) = w.dims2()?;
    let w = w.to_dtype(T::DTYPE)?;
    let chunk_elems = match dw_to {
        HeadGrad::Skip => CHUNK_ELEMS,
        _ => CHUNK_ELEMS_DW,
    };
    let chunk_rows = (chunk_elems / vocab).max(1);
    let dw = match dw_to {
        HeadGrad::Return => Some(zeros::<f32>(dev, (vocab, d))?),
        _ => None,
    };
    let mut dh_chunks = Vec::new();
    let mut losses = Vec::new();
    for chunk in target_rows.chunks(chunk_rows) {
        let c = chunk.len();
        let idx = upload(dev, chunk)?;
        let hc = h.index_select(&idx, 0)?;
        let chunk_targets: Vec<i32> = chunk.iter().map(|&r| targets[r as usize]).collect();
        let logits = hc.matmul(&w.t()?)?.contiguous()?;
        let loss = output::<f32>(dev, c)?;
        Launch::typed::<T>(dev, "cross_entropy")
            .tensor(&logits)?
            .tensor(&upload(dev, &chunk_targets)?)?
            .tensor(&loss)?
            .int(vocab)?
            .float(grad_scale)
            .run(rows(c)?, THREADS)?;
        dh_chunks.push(logits.matmul(&w)?);
        match (&dw, dw_to) {
            (Some(dw), _) => super::matmul_add(dw, &logits, true, &hc, false)?,
            (None, HeadGrad::Into(flat, offset)) => {
                super::matmul_add_into(flat, offset, (vocab, d), &logits, true, &hc, false)?;
            }
            _ => {}
        }
        losses.push(loss);
    }
    let loss_sum = if losses.is_empty() {
        0.0
    } else {
        Tensor::cat(&losses, 0)?
            .to_vec1::<f32>()?
            .iter()
            .map(|&l| f64::from(l))
            .sum()
    };
    // Scatter the chunks' rows back: rows without a target read an appended zero row.
    let r = target_rows.len();
    let mut source = vec![r as u32; n];
    for (k, &row) in target_rows.iter().enumerate() {
        source[row as usize] = k as u32;
    }
    dh_chunks.push(zeros::<T>(dev, (1, d))?);
    let stacked = Tensor::cat(&dh_chunks, 0)?;
    let dh = super::embedding(&source, &stacked)?;
    Ok(LmHeadLoss {
        loss_sum,
        n_targets: r,
        dh,
        dw,
    })
}
