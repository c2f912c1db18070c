//! The LM head fused with cross-entropy and its gradient, without materialising the `(N, V)`
//! logits: only rows with a target are computed, in chunks of rows. Within a chunk the vocabulary
//! is split into fixed blocks, one parallel task each: a first pass computes a block's logits and
//! softmax statistics; after the blocks' statistics are combined per row, a second pass turns the
//! block's logits into their gradient in place, multiplies it into a partial `dh` and adds it
//! into the block's rows of `dw`. The partial `dh` are summed in block order.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::cpu::{self, dims, expect_len, read};
use super::expf::exp;
use super::linalg::{MatMut, MatRef, matmul};
use super::{KernelError, Result};

const KERNEL: &str = "lm_head_loss";

/// Target rows per chunk: the chunk's logits take `CHUNK_ROWS × V` floats.
const CHUNK_ROWS: usize = 128;
/// Fewest vocabulary entries per parallel task. A block is also at least `D` entries, so the
/// blocks' partial `dh` (each `rows × D`) take no more memory than the chunk's logits.
const MIN_VOCAB_BLOCK: usize = 2048;

/// Loss and gradients of [`lm_head_loss`].
#[derive(Debug, Clone)]
pub struct LmHeadLoss {
    /// Σ over rows with a target of `−log softmax(h · wᵀ)[target]`, summed in row order.
    pub loss_sum: f64,
    /// Rows that have a target.
    pub n_targets: usize,
    /// `grad_scale · ∂loss_sum/∂h`, `(N, D)`; zero in rows without a target.
    pub dh: Tensor,
    /// `grad_scale · ∂loss_sum/∂w`, `(V, D)`, when asked for ([`HeadGrad::Return`]).
    pub dw: Option<Tensor>,
}

/// What [`lm_head_loss`] does with the head's weight gradient.
#[derive(Debug, Clone, Copy)]
pub enum HeadGrad<'a> {
    /// Nothing: the head is frozen.
    Skip,
    /// Returns it as [`LmHeadLoss::dw`].
    Return,
    /// Adds it into `flat[offset..offset + V·D]`, an f32 buffer on the GPU (the trainer's flat
    /// gradient buffer), chunk by chunk, with no `(V, D)` tensor of its own.
    Into(&'a Tensor, usize),
}

/// Cross-entropy of the logits `h: (N, D) · w: (V, D)ᵀ` against `targets` (one per row, `-1` for
/// a row without a target), with the gradients scaled by `grad_scale` (e.g. 1 / tokens in the
/// batch); `dw` says what becomes of the weight gradient.
pub fn lm_head_loss(
    h: &Tensor,
    w: &Tensor,
    targets: &[i32],
    grad_scale: f32,
    dw: HeadGrad,
) -> Result<LmHeadLoss> {
    let [n, d] = dims(KERNEL, "h", h)?;
    let [vocab, wd] = dims(KERNEL, "w", w)?;
    if wd != d || d == 0 || vocab == 0 {
        return Err(KernelError::Shape {
            kernel: KERNEL,
            detail: format!(
                "`h` is {:?} and `w` is {:?}: need (N, D) and (V, D) with D, V > 0",
                h.dims(),
                w.dims()
            ),
        });
    }
    expect_len(KERNEL, "targets", targets.len(), n)?;
    let mut rows = Vec::new();
    for (row, &target) in targets.iter().enumerate() {
        match usize::try_from(target) {
            Ok(t) if t < vocab => rows.push(row),
            _ if target == -1 => {}
            _ => return Err(KernelError::TargetOutOfRange { row, target, vocab }),
        }
    }
    match (h.device(), dw) {
        (Device::Cpu, HeadGrad::Into(..)) => Err(KernelError::Argument {
            kernel: KERNEL,
            detail: "the weight gradient can be added into a GPU buffer only".into(),
        }),
        (Device::Cpu, _) => on_cpu(
            h,
            w,
            targets,
            &rows,
            grad_scale,
            matches!(dw, HeadGrad::Return),
        ),
        #[cfg(feature = "cuda")]
        (Device::Cuda(_), _) => {
            let rows: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
            super::cuda::lm_head_loss(h, w, targets, &rows, grad_scale, dw)
        }
        (device, _) => Err(cpu::unsupported(KERNEL, device)),
    }
}

/// The CPU path of [`lm_head_loss`] for the target rows `rows`: chunks of them, each in two
/// passes over the vocabulary blocks.
fn on_cpu(
    h: &Tensor,
    w: &Tensor,
    targets: &[i32],
    rows: &[usize],
    grad_scale: f32,
    need_dw: bool,
) -> Result<LmHeadLoss> {
    let (n, d) = h.dims2()?;
    let vocab = w.dim(0)?;
    let (hs, ws) = (read(KERNEL, "h", h)?, read(KERNEL, "w", w)?);
    let geo = Geometry {
        d,
        block: MIN_VOCAB_BLOCK.max(d),
    };
    let mut dh = vec![0.0f32; n * d];
    let mut dw = if need_dw {
        vec![0.0f32; vocab * d]
    } else {
        Vec::new()
    };
    let mut loss_sum = 0.0f64;
    let mut hc = vec![0.0f32; CHUNK_ROWS.min(rows.len()) * d];
    let mut logits_t = vec![0.0f32; CHUNK_ROWS.min(rows.len()) * vocab];
    for chunk_rows in rows.chunks(CHUNK_ROWS) {
        let c = chunk_rows.len();
        let chunk_targets: Vec<usize> = chunk_rows.iter().map(|&r| targets[r] as usize).collect();
        for (dst, &row) in hc.chunks_exact_mut(d).zip(chunk_rows) {
            dst.copy_from_slice(&hs[row * d..(row + 1) * d]);
        }
        let chunk = Chunk {
            h: &hc[..c * d],
            targets: &chunk_targets,
        };
        let logits_t = &mut logits_t[..vocab * c];
        let blocks = block_logits(logits_t, &ws, &chunk, geo);
        let stats = RowStats::combine(&blocks, c);
        loss_sum += stats
            .losses(&blocks)
            .iter()
            .map(|&l| f64::from(l))
            .sum::<f64>();
        let dw_blocks: Vec<Option<&mut [f32]>> = if need_dw {
            dw.chunks_mut(geo.block * d).map(Some).collect()
        } else {
            blocks.iter().map(|_| None).collect()
        };
        let partials = block_gradients(
            logits_t, &ws, &chunk, &blocks, &stats, dw_blocks, grad_scale, geo,
        );
        let mut dh_chunk = vec![0.0f32; c * d];
        dh_chunk.par_chunks_mut(d).enumerate().for_each(|(i, out)| {
            for partial in &partials {
                for (o, p) in out.iter_mut().zip(&partial[i * d..(i + 1) * d]) {
                    *o += p;
                }
            }
        });
        for (src, &row) in dh_chunk.chunks_exact(d).zip(chunk_rows) {
            dh[row * d..(row + 1) * d].copy_from_slice(src);
        }
    }
    Ok(LmHeadLoss {
        loss_sum,
        n_targets: rows.len(),
        dh: cpu::tensor(dh, (n, d))?,
        dw: if need_dw {
            Some(cpu::tensor(dw, (vocab, d))?)
        } else {
            None
        },
    })
}

/// Model width and vocabulary entries per parallel block.
#[derive(Clone, Copy)]
struct Geometry {
    d: usize,
    block: usize,
}

/// The target rows of one chunk.
struct Chunk<'a> {
    /// Their hidden states, `(c, D)`.
    h: &'a [f32],
    /// Their targets, `c` of them.
    targets: &'a [usize],
}

/// Softmax statistics of one vocabulary block for each row of a chunk.
struct BlockStats {
    /// Largest logit of the block, per row.
    max: Vec<f32>,
    /// Σ exp(logit − max) over the block, per row.
    sum: Vec<f32>,
    /// (row, logit) for the rows whose target lies in this block.
    target_logits: Vec<(usize, f32)>,
}

/// First pass over one chunk: the transposed logits `(V, c)` of every vocabulary block (a
/// contiguous range), left exponentiated against the block's row maxima, and the blocks'
/// statistics.
fn block_logits(
    logits_t: &mut [f32],
    w: &[f32],
    chunk: &Chunk<'_>,
    geo: Geometry,
) -> Vec<BlockStats> {
    let (c, d) = (chunk.targets.len(), geo.d);
    let h_t = MatRef::rows(chunk.h, c, d).t();
    logits_t
        .par_chunks_mut(geo.block * c)
        .enumerate()
        .map(|(blk, lt)| {
            let (v0, vb) = (blk * geo.block, lt.len() / c);
            matmul(
                MatMut::rows(lt, vb, c),
                MatRef::rows(&w[v0 * d..(v0 + vb) * d], vb, d),
                h_t,
                1.0,
                false,
            );
            let target_logits = chunk
                .targets
                .iter()
                .enumerate()
                .filter(|&(_, &t)| (v0..v0 + vb).contains(&t))
                .map(|(i, &t)| (i, lt[(t - v0) * c + i]))
                .collect();
            let mut max = vec![f32::NEG_INFINITY; c];
            for row in lt.chunks_exact(c) {
                for (m, &x) in max.iter_mut().zip(row) {
                    *m = m.max(x);
                }
            }
            let mut sum = vec![0.0f32; c];
            for row in lt.chunks_exact_mut(c) {
                for ((x, m), s) in row.iter_mut().zip(&max).zip(&mut sum) {
                    *x = exp(*x - m);
                    *s += *x;
                }
            }
            BlockStats {
                max,
                sum,
                target_logits,
            }
        })
        .collect()
}

/// Per-row softmax statistics over the whole vocabulary, combined from the blocks in order.
struct RowStats {
    max: Vec<f32>,
    sum: Vec<f32>,
}

impl RowStats {
    fn combine(blocks: &[BlockStats], c: usize) -> Self {
        let mut max = vec![f32::NEG_INFINITY; c];
        for b in blocks {
            for (m, &x) in max.iter_mut().zip(&b.max) {
                *m = m.max(x);
            }
        }
        let mut sum = vec![0.0f32; c];
        for b in blocks {
            for (((total, &m), &bm), &bs) in sum.iter_mut().zip(&max).zip(&b.max).zip(&b.sum) {
                *total += bs * (bm - m).exp();
            }
        }
        Self { max, sum }
    }

    /// `log-sum-exp − target logit` of each row.
    fn losses(&self, blocks: &[BlockStats]) -> Vec<f32> {
        let mut losses: Vec<f32> = self
            .max
            .iter()
            .zip(&self.sum)
            .map(|(&m, &s)| m + s.ln())
            .collect();
        for &(i, logit) in blocks.iter().flat_map(|b| &b.target_logits) {
            losses[i] -= logit;
        }
        losses
    }
}

/// Second pass over one chunk, per vocabulary block: `dlogits = grad_scale · (softmax − onehot)`
/// in place, the block's partial `dh = dlogits_blockᵀ · w_block` (returned, `(c, D)` each, in block
/// order) and, where given, `dw_block += dlogits_block · h`.
#[allow(clippy::too_many_arguments)] // the two passes' shared state, named as in the first pass
fn block_gradients(
    logits_t: &mut [f32],
    w: &[f32],
    chunk: &Chunk<'_>,
    blocks: &[BlockStats],
    rows: &RowStats,
    dw_blocks: Vec<Option<&mut [f32]>>,
    grad_scale: f32,
    geo: Geometry,
) -> Vec<Vec<f32>> {
    let (c, d) = (chunk.targets.len(), geo.d);
    let h = MatRef::rows(chunk.h, c, d);
    logits_t
        .par_chunks_mut(geo.block * c)
        .zip(blocks)
        .zip(dw_blocks)
        .enumerate()
        .map(|(blk, ((lt, stats), dw))| {
            let (v0, vb) = (blk * geo.block, lt.len() / c);
            let factor: Vec<f32> = (0..c)
                .map(|i| (stats.max[i] - rows.max[i]).exp() / rows.sum[i] * grad_scale)
                .collect();
            for row in lt.chunks_exact_mut(c) {
                for (x, f) in row.iter_mut().zip(&factor) {
                    *x *= f;
                }
            }
            for &(i, _) in &stats.target_logits {
                lt[(chunk.targets[i] - v0) * c + i] -= grad_scale;
            }
            let dlogits_t = MatRef::rows(lt, vb, c);
            let mut dh = vec![0.0f32; c * d];
            matmul(
                MatMut::rows(&mut dh, c, d),
                dlogits_t.t(),
                MatRef::rows(&w[v0 * d..(v0 + vb) * d], vb, d),
                1.0,
                false,
            );
            if let Some(dw) = dw {
                matmul(MatMut::rows(dw, vb, d), dlogits_t, h, 1.0, true);
            }
            dh
        })
        .collect()
}
