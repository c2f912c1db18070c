//! The LM head fused with cross-entropy and its gradient, without materialising the `(N, V)`
//! logits: only rows with a target are computed, in chunks of rows, and each chunk's logits are
//! turned into their gradient in place.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::cpu::{self, dims, expect_len, read};
use super::linalg::{MatMut, MatRef, matmul};
use super::{KernelError, Result};

/// Target rows per chunk: the chunk's logits take `CHUNK_ROWS × V` floats.
const CHUNK_ROWS: usize = 128;
/// Vocabulary entries per parallel task.
const VOCAB_BLOCK: usize = 2048;
/// Model-width columns of `dh` per parallel task.
const WIDTH_BLOCK: usize = 32;

/// Loss and gradients of [`lm_head_loss`].
#[derive(Debug, Clone)]
pub struct LmHeadLoss {
    /// Σ over rows with a target of `−log softmax(h · wᵀ)[target]`, summed in row order.
    pub loss_sum: f64,
    /// Rows that have a target.
    pub n_targets: usize,
    /// `grad_scale · ∂loss_sum/∂h`, `(N, D)`; zero in rows without a target.
    pub dh: Tensor,
    /// `grad_scale · ∂loss_sum/∂w`, `(V, D)`, when asked for.
    pub dw: Option<Tensor>,
}

/// Cross-entropy of the logits `h: (N, D) · w: (V, D)ᵀ` against `targets` (one per row, `-1` for
/// a row without a target), with the gradients scaled by `grad_scale` (e.g. 1 / tokens in the
/// batch). `dw` is computed only when `need_dw` (it is not for a frozen head).
pub fn lm_head_loss(
    h: &Tensor,
    w: &Tensor,
    targets: &[i32],
    grad_scale: f32,
    need_dw: bool,
) -> Result<LmHeadLoss> {
    const KERNEL: &str = "lm_head_loss";
    match h.device() {
        Device::Cpu => {
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
            let (hs, ws) = (read(KERNEL, "h", h)?, read(KERNEL, "w", w)?);
            let size = Dims { d, vocab };
            let mut dh = vec![0.0f32; n * d];
            let mut dw = if need_dw {
                vec![0.0f32; vocab * d]
            } else {
                Vec::new()
            };
            let mut loss_sum = 0.0f64;
            let mut buffers = Buffers::new(CHUNK_ROWS.min(rows.len()), size);
            for chunk in rows.chunks(CHUNK_ROWS) {
                let chunk_targets: Vec<usize> =
                    chunk.iter().map(|&r| targets[r] as usize).collect();
                for (dst, &row) in buffers.h.chunks_exact_mut(d).zip(chunk) {
                    dst.copy_from_slice(&hs[row * d..(row + 1) * d]);
                }
                let losses =
                    chunk_loss_and_grad(&mut buffers, &ws, &chunk_targets, size, grad_scale);
                loss_sum += losses.iter().map(|&l| f64::from(l)).sum::<f64>();
                for (ci, &row) in chunk.iter().enumerate() {
                    for (j, g) in dh[row * d..(row + 1) * d].iter_mut().enumerate() {
                        *g = buffers.dh_t[j * chunk.len() + ci];
                    }
                }
                if need_dw {
                    accumulate_dw(&mut dw, &buffers, chunk.len(), size);
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
        device => Err(cpu::unsupported(KERNEL, device)),
    }
}

/// Model width and vocabulary size.
#[derive(Clone, Copy)]
struct Dims {
    d: usize,
    vocab: usize,
}

/// Scratch reused by every chunk (sized for a full chunk; a chunk of `c` rows uses the prefixes).
struct Buffers {
    /// The chunk's hidden rows, `(c, D)`.
    h: Vec<f32>,
    /// Transposed logits, then their gradient, `(V, c)`: a vocabulary block is a contiguous range.
    logits_t: Vec<f32>,
    /// Transposed gradient of the chunk's hidden rows, `(D, c)`.
    dh_t: Vec<f32>,
}

impl Buffers {
    fn new(rows: usize, size: Dims) -> Self {
        Self {
            h: vec![0.0; rows * size.d],
            logits_t: vec![0.0; size.vocab * rows],
            dh_t: vec![0.0; size.d * rows],
        }
    }
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

/// Computes the chunk's logits and per-row losses, turns the logits into
/// `grad_scale · (softmax − onehot)` in place and fills `dh_t`. Returns the per-row losses.
fn chunk_loss_and_grad(
    buf: &mut Buffers,
    w: &[f32],
    targets: &[usize],
    size: Dims,
    grad_scale: f32,
) -> Vec<f32> {
    let (c, d, vocab) = (targets.len(), size.d, size.vocab);
    let h = &buf.h[..c * d];
    let logits_t = &mut buf.logits_t[..vocab * c];
    // Logits of each vocabulary block, exponentiated against the block's row maxima.
    let stats: Vec<BlockStats> = logits_t
        .par_chunks_mut(VOCAB_BLOCK * c)
        .enumerate()
        .map(|(blk, lt)| {
            let (v0, vb) = (blk * VOCAB_BLOCK, lt.len() / c);
            matmul(
                MatMut::rows(lt, vb, c),
                MatRef::rows(&w[v0 * d..(v0 + vb) * d], vb, d),
                MatRef::rows(h, c, d).t(),
                1.0,
                false,
            );
            let target_logits = targets
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
                    *x = (*x - m).exp();
                    *s += *x;
                }
            }
            BlockStats {
                max,
                sum,
                target_logits,
            }
        })
        .collect();
    // Combine the blocks in order: log-sum-exp and loss per row.
    let mut losses = vec![0.0f32; c];
    let mut row_max = vec![f32::NEG_INFINITY; c];
    for s in &stats {
        for (m, &x) in row_max.iter_mut().zip(&s.max) {
            *m = m.max(x);
        }
    }
    let mut row_sum = vec![0.0f32; c];
    for s in &stats {
        for (((total, &m), &bm), &bs) in row_sum.iter_mut().zip(&row_max).zip(&s.max).zip(&s.sum) {
            *total += bs * (bm - m).exp();
        }
        for &(i, logit) in &s.target_logits {
            losses[i] = -logit;
        }
    }
    for ((loss, &m), &s) in losses.iter_mut().zip(&row_max).zip(&row_sum) {
        *loss += m + s.ln();
    }
    // dlogits = grad_scale · (softmax − onehot), block by block.
    logits_t
        .par_chunks_mut(VOCAB_BLOCK * c)
        .zip(&stats)
        .enumerate()
        .for_each(|(blk, (lt, s))| {
            let factor: Vec<f32> = s
                .max
                .iter()
                .zip(&row_max)
                .zip(&row_sum)
                .map(|((&bm, &m), &total)| (bm - m).exp() / total * grad_scale)
                .collect();
            for row in lt.chunks_exact_mut(c) {
                for (x, f) in row.iter_mut().zip(&factor) {
                    *x *= f;
                }
            }
            let v0 = blk * VOCAB_BLOCK;
            for &(i, _) in &s.target_logits {
                lt[(targets[i] - v0) * c + i] -= grad_scale;
            }
        });
    // dhᵀ = wᵀ · dlogitsᵀ, by blocks of model-width columns.
    let dlogits_t = MatRef::rows(logits_t, vocab, c);
    buf.dh_t[..d * c]
        .par_chunks_mut(WIDTH_BLOCK * c)
        .enumerate()
        .for_each(|(blk, dst)| {
            let (j0, width) = (blk * WIDTH_BLOCK, dst.len() / c);
            matmul(
                MatMut::rows(dst, width, c),
                MatRef::new(&w[j0..], width, vocab, 1, d),
                dlogits_t,
                1.0,
                false,
            );
        });
    losses
}

/// `dw += dlogitsᵀ · h` for the chunk in `buf`, by vocabulary blocks.
fn accumulate_dw(dw: &mut [f32], buf: &Buffers, c: usize, size: Dims) {
    let d = size.d;
    let h = MatRef::rows(&buf.h[..c * d], c, d);
    dw.par_chunks_mut(VOCAB_BLOCK * d)
        .zip(buf.logits_t[..size.vocab * c].par_chunks(VOCAB_BLOCK * c))
        .for_each(|(dw, lt)| {
            let vb = lt.len() / c;
            matmul(
                MatMut::rows(dw, vb, d),
                MatRef::rows(lt, vb, c),
                h,
                1.0,
                true,
            );
        });
}
