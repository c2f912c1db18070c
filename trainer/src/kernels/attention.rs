//! Causal grouped-query attention, flash-style: the forward saves only the output and the
//! log-sum-exp of each query row; the backward recomputes the probabilities from them.
//!
//! Query `i` (of `Tq`) attends key `j` (of `Tk >= Tq`) iff `j <= i + (Tk − Tq)` and the key mask
//! allows `j`: the queries are the last `Tq` positions of the keys (a KV cache in generation).
//! Query head `h` reads key/value head `h / (H / Hkv)`.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::cpu::{self, dims, expect_shape, read};
use super::expf::exp;
use super::linalg::{MatMut, MatRef, dot, matmul, sum};
use super::{KernelError, Result};

/// Query rows per block: the scores of one block against its visible keys live in a scratch
/// of `Q_BLOCK × Tk`.
const Q_BLOCK: usize = 64;

/// Output of [`attention`].
#[derive(Debug, Clone)]
pub struct AttnOutput {
    /// Attention output, `(B, Tq, H, hd)` (the layout of the output projection's input).
    pub out: Tensor,
    /// Log-sum-exp of the scaled, masked scores of each query row, `(B, H, Tq)`; `-inf` for a
    /// row that may attend no key (its output is zero).
    pub lse: Tensor,
}

/// Attention of `q: (B, Tq, H, hd)` over `k, v: (B, Tk, Hkv, hd)` with causal masking, an
/// optional key mask `(B, Tk)` (1 = may be attended, 0 = padding) and score scale `scale`
/// (usually `1/sqrt(hd)`).
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    key_mask: Option<&[u8]>,
    scale: f32,
) -> Result<AttnOutput> {
    const KERNEL: &str = "attention";
    let g = Geometry::of(KERNEL, q, k, v, key_mask)?;
    match q.device() {
        Device::Cpu => {
            let (qs, ks, vs) = (
                read(KERNEL, "q", q)?,
                read(KERNEL, "k", k)?,
                read(KERNEL, "v", v)?,
            );
            let x = Inputs {
                g,
                q: g.queries(&qs),
                k: g.keys(&ks),
                v: g.keys(&vs),
                key_mask,
                scale,
            };
            let heads: Vec<(Vec<f32>, Vec<f32>)> = (0..g.b * g.h)
                .into_par_iter()
                .map(|task| forward_head(&x, task / g.h, task % g.h))
                .collect();
            let out = interleave(g.b, g.tq, g.h, g.hd, |b, h| &heads[b * g.h + h].0);
            let lse: Vec<f32> = heads
                .iter()
                .flat_map(|(_, lse)| lse.iter().copied())
                .collect();
            Ok(AttnOutput {
                out: cpu::tensor(out, (g.b, g.tq, g.h, g.hd))?,
                lse: cpu::tensor(lse, (g.b, g.h, g.tq))?,
            })
        }
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => super::cuda::attention(g, q, k, v, key_mask, scale),
        device => Err(cpu::unsupported(KERNEL, device)),
    }
}

/// Gradients `(dq, dk, dv)` of [`attention`] for the upstream gradient `dout: (B, Tq, H, hd)`,
/// from the forward's inputs, `out` and `lse`.
#[allow(clippy::too_many_arguments)] // the forward's inputs and outputs, as the forward names them
pub fn attention_backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    out: &Tensor,
    lse: &Tensor,
    dout: &Tensor,
    key_mask: Option<&[u8]>,
    scale: f32,
) -> Result<(Tensor, Tensor, Tensor)> {
    const KERNEL: &str = "attention_backward";
    let g = Geometry::of(KERNEL, q, k, v, key_mask)?;
    expect_shape(KERNEL, "out", out, q.dims())?;
    expect_shape(KERNEL, "dout", dout, q.dims())?;
    expect_shape(KERNEL, "lse", lse, &[g.b, g.h, g.tq])?;
    match q.device() {
        Device::Cpu => {
            let (qs, ks, vs) = (
                read(KERNEL, "q", q)?,
                read(KERNEL, "k", k)?,
                read(KERNEL, "v", v)?,
            );
            let (os, lses, dos) = (
                read(KERNEL, "out", out)?,
                read(KERNEL, "lse", lse)?,
                read(KERNEL, "dout", dout)?,
            );
            let x = Inputs {
                g,
                q: g.queries(&qs),
                k: g.keys(&ks),
                v: g.keys(&vs),
                key_mask,
                scale,
            };
            let saved = Saved {
                out: g.queries(&os),
                dout: g.queries(&dos),
                lse: &lses,
            };
            // One task per (batch, kv head): it owns dk and dv of that head and dq of its query heads.
            let grads: Vec<KvGrads> = (0..g.b * g.hkv)
                .into_par_iter()
                .map(|task| backward_kv_head(&x, &saved, task / g.hkv, task % g.hkv))
                .collect();
            let group = g.group();
            let dq = interleave(g.b, g.tq, g.h, g.hd, |b, h| {
                let sub = h % group;
                &grads[b * g.hkv + h / group].dq[sub * g.tq * g.hd..(sub + 1) * g.tq * g.hd]
            });
            let dk = interleave(g.b, g.tk, g.hkv, g.hd, |b, kv| &grads[b * g.hkv + kv].dk);
            let dv = interleave(g.b, g.tk, g.hkv, g.hd, |b, kv| &grads[b * g.hkv + kv].dv);
            Ok((
                cpu::tensor(dq, q.shape())?,
                cpu::tensor(dk, (g.b, g.tk, g.hkv, g.hd))?,
                cpu::tensor(dv, (g.b, g.tk, g.hkv, g.hd))?,
            ))
        }
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => {
            super::cuda::attention_backward(g, q, k, v, out, lse, dout, key_mask, scale)
        }
        device => Err(cpu::unsupported(KERNEL, device)),
    }
}

/// The forward's inputs as per-head matrices.
struct Inputs<'a> {
    g: Geometry,
    q: Heads<'a>,
    k: Heads<'a>,
    v: Heads<'a>,
    key_mask: Option<&'a [u8]>,
    scale: f32,
}

impl Inputs<'_> {
    /// The key mask of batch entry `b`.
    fn mask(&self, b: usize) -> Option<&[u8]> {
        self.key_mask
            .map(|m| &m[b * self.g.tk..(b + 1) * self.g.tk])
    }
}

/// What the backward reads besides the forward's inputs.
struct Saved<'a> {
    out: Heads<'a>,
    dout: Heads<'a>,
    /// `(B, H, Tq)`.
    lse: &'a [f32],
}

/// Output `(Tq, hd)` and log-sum-exp `(Tq)` of query head `h` of batch entry `b`, one block of
/// query rows at a time against the keys the block can see.
fn forward_head(x: &Inputs<'_>, b: usize, h: usize) -> (Vec<f32>, Vec<f32>) {
    let g = x.g;
    let kv = h / g.group();
    let mask = x.mask(b);
    let mut out = vec![0.0f32; g.tq * g.hd];
    let mut lse = vec![0.0f32; g.tq];
    let mut scores = vec![0.0f32; Q_BLOCK.min(g.tq) * g.tk];
    for i0 in (0..g.tq).step_by(Q_BLOCK) {
        let rows = Q_BLOCK.min(g.tq - i0);
        let keys = g.visible_keys(i0 + rows);
        let s = &mut scores[..rows * keys];
        matmul(
            MatMut::rows(s, rows, keys),
            x.q.rows(b, h, i0, rows),
            x.k.rows(b, kv, 0, keys).t(),
            x.scale,
            false,
        );
        for (r, row) in s.chunks_exact_mut(keys).enumerate() {
            lse[i0 + r] = softmax_row(row, g.visible_keys(i0 + r + 1), mask);
        }
        let out_blk = MatMut::rows(&mut out[i0 * g.hd..(i0 + rows) * g.hd], rows, g.hd);
        matmul(
            out_blk,
            MatRef::rows(s, rows, keys),
            x.v.rows(b, kv, 0, keys),
            1.0,
            false,
        );
    }
    (out, lse)
}

/// Gradients owned by key/value head `kv` of batch entry `b`: its dk and dv, summed over the
/// group's query heads and query blocks in order, and dq of the group's query heads.
fn backward_kv_head(x: &Inputs<'_>, saved: &Saved<'_>, b: usize, kv: usize) -> KvGrads {
    let (g, group, scale) = (x.g, x.g.group(), x.scale);
    let mask = x.mask(b);
    let mut dq = vec![0.0f32; group * g.tq * g.hd];
    let mut dk = vec![0.0f32; g.tk * g.hd];
    let mut dv = vec![0.0f32; g.tk * g.hd];
    let block = Q_BLOCK.min(g.tq) * g.tk;
    let (mut p, mut dp) = (vec![0.0f32; block], vec![0.0f32; block]);
    for (sub, dq) in dq.chunks_exact_mut(g.tq * g.hd).enumerate() {
        let h = kv * group + sub;
        let lse = &saved.lse[(b * g.h + h) * g.tq..(b * g.h + h + 1) * g.tq];
        for i0 in (0..g.tq).step_by(Q_BLOCK) {
            let rows = Q_BLOCK.min(g.tq - i0);
            let keys = g.visible_keys(i0 + rows);
            let (p, dp) = (&mut p[..rows * keys], &mut dp[..rows * keys]);
            let (q_blk, do_blk) = (x.q.rows(b, h, i0, rows), saved.dout.rows(b, h, i0, rows));
            let (k_vis, v_vis) = (x.k.rows(b, kv, 0, keys), x.v.rows(b, kv, 0, keys));
            // P, recomputed from the scores and the saved log-sum-exp.
            matmul(MatMut::rows(p, rows, keys), q_blk, k_vis.t(), scale, false);
            for (r, row) in p.chunks_exact_mut(keys).enumerate() {
                probabilities_row(row, g.visible_keys(i0 + r + 1), mask, lse[i0 + r]);
            }
            // dV += Pᵀ·dO; dP = dO·Vᵀ; dS = P ⊙ (dP − rowsum(dO ⊙ O)).
            let p_mat = MatRef::rows(p, rows, keys);
            matmul(
                MatMut::rows(&mut dv[..keys * g.hd], keys, g.hd),
                p_mat.t(),
                do_blk,
                1.0,
                true,
            );
            matmul(MatMut::rows(dp, rows, keys), do_blk, v_vis.t(), 1.0, false);
            for (r, (ds, p)) in dp
                .chunks_exact_mut(keys)
                .zip(p.chunks_exact(keys))
                .enumerate()
            {
                let delta = dot(saved.dout.row(b, h, i0 + r), saved.out.row(b, h, i0 + r));
                for (ds, p) in ds.iter_mut().zip(p) {
                    *ds = p * (*ds - delta);
                }
            }
            // dQ = scale·dS·K; dK += scale·dSᵀ·Q.
            let ds = MatRef::rows(dp, rows, keys);
            matmul(
                MatMut::rows(&mut dq[i0 * g.hd..(i0 + rows) * g.hd], rows, g.hd),
                ds,
                k_vis,
                scale,
                false,
            );
            matmul(
                MatMut::rows(&mut dk[..keys * g.hd], keys, g.hd),
                ds.t(),
                q_blk,
                scale,
                true,
            );
        }
    }
    KvGrads { dq, dk, dv }
}

/// Gradients computed by one (batch, kv head) task of the backward.
struct KvGrads {
    /// dq of the group's query heads, each `(Tq, hd)`, one after the other.
    dq: Vec<f32>,
    /// `(Tk, hd)`.
    dk: Vec<f32>,
    /// `(Tk, hd)`.
    dv: Vec<f32>,
}

/// Sizes of one attention call, validated.
#[derive(Clone, Copy)]
pub(super) struct Geometry {
    pub(super) b: usize,
    pub(super) tq: usize,
    pub(super) tk: usize,
    pub(super) h: usize,
    pub(super) hkv: usize,
    pub(super) hd: usize,
}

impl Geometry {
    fn of(
        kernel: &'static str,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        key_mask: Option<&[u8]>,
    ) -> Result<Self> {
        let [b, tq, h, hd] = dims(kernel, "q", q)?;
        let [kb, tk, hkv, khd] = dims(kernel, "k", k)?;
        expect_shape(kernel, "v", v, k.dims())?;
        let shape_error = |detail: String| Err(KernelError::Shape { kernel, detail });
        if kb != b || khd != hd {
            return shape_error(format!(
                "`q` is {:?} but `k` is {:?}: batch and head dim must agree",
                q.dims(),
                k.dims()
            ));
        }
        if hd == 0 || h == 0 || hkv == 0 || !h.is_multiple_of(hkv) {
            return shape_error(format!(
                "{h} query heads cannot be grouped over {hkv} key/value heads of dim {hd}"
            ));
        }
        if tq > tk {
            return shape_error(format!(
                "{tq} queries but only {tk} keys: the keys must include the queries' own"
            ));
        }
        if let Some(mask) = key_mask {
            cpu::expect_len(kernel, "key_mask", mask.len(), b * tk)?;
        }
        Ok(Self {
            b,
            tq,
            tk,
            h,
            hkv,
            hd,
        })
    }

    /// Query heads per key/value head.
    pub(super) fn group(&self) -> usize {
        self.h / self.hkv
    }

    /// Keys visible to the first `queries` query rows under the causal mask.
    fn visible_keys(&self, queries: usize) -> usize {
        (queries + self.tk - self.tq).min(self.tk)
    }

    fn queries<'a>(&self, data: &'a [f32]) -> Heads<'a> {
        Heads {
            data,
            t: self.tq,
            heads: self.h,
            hd: self.hd,
        }
    }

    fn keys<'a>(&self, data: &'a [f32]) -> Heads<'a> {
        Heads {
            data,
            t: self.tk,
            heads: self.hkv,
            hd: self.hd,
        }
    }
}

/// A `(B, T, heads, hd)` tensor seen as one `(T, hd)` matrix per (batch, head).
#[derive(Clone, Copy)]
struct Heads<'a> {
    data: &'a [f32],
    t: usize,
    heads: usize,
    hd: usize,
}

impl<'a> Heads<'a> {
    /// Rows `start..start + count` of head `head` of batch `b`.
    fn rows(&self, b: usize, head: usize, start: usize, count: usize) -> MatRef<'a> {
        let base = (b * self.t * self.heads + head) * self.hd;
        MatRef::new(&self.data[base..], self.t, self.hd, self.heads * self.hd, 1)
            .row_range(start, count)
    }

    /// Row `i` of head `head` of batch `b`.
    fn row(&self, b: usize, head: usize, i: usize) -> &'a [f32] {
        let at = ((b * self.t + i) * self.heads + head) * self.hd;
        &self.data[at..at + self.hd]
    }
}

/// Replaces the scores of one query row (over the block's visible keys) by its softmax over the
/// first `allowed` keys that the mask permits, and returns the row's log-sum-exp (`-inf`, with a
/// zero row, when no key is permitted).
fn softmax_row(row: &mut [f32], allowed: usize, mask: Option<&[u8]>) -> f32 {
    mask_row(row, allowed, mask);
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return f32::NEG_INFINITY;
    }
    for x in row.iter_mut() {
        *x = exp(*x - max);
    }
    let total = sum(row);
    let inv = 1.0 / total;
    for x in row.iter_mut() {
        *x *= inv;
    }
    max + total.ln()
}

/// Replaces the scores of one query row by the probabilities `exp(score − lse)` that the forward
/// used (zero for keys it could not attend).
fn probabilities_row(row: &mut [f32], allowed: usize, mask: Option<&[u8]>, lse: f32) {
    if lse == f32::NEG_INFINITY {
        row.fill(0.0);
        return;
    }
    mask_row(row, allowed, mask);
    for x in row.iter_mut() {
        *x = exp(*x - lse);
    }
}

/// Sets the scores of keys beyond `allowed` or masked out to `-inf`.
fn mask_row(row: &mut [f32], allowed: usize, mask: Option<&[u8]>) {
    row[allowed..].fill(f32::NEG_INFINITY);
    if let Some(mask) = mask {
        for (x, &m) in row[..allowed].iter_mut().zip(mask) {
            if m == 0 {
                *x = f32::NEG_INFINITY;
            }
        }
    }
}

/// Assembles a `(B, T, heads, hd)` buffer from one `(T, hd)` matrix per (batch, head).
fn interleave<'a>(
    b: usize,
    t: usize,
    heads: usize,
    hd: usize,
    head: impl Fn(usize, usize) -> &'a [f32] + Sync,
) -> Vec<f32> {
    let mut out = vec![0.0f32; b * t * heads * hd];
    out.par_chunks_mut(heads * hd)
        .enumerate()
        .for_each(|(bt, row)| {
            let (bi, ti) = (bt / t, bt % t);
            for (h, dst) in row.chunks_exact_mut(hd).enumerate() {
                dst.copy_from_slice(&head(bi, h)[ti * hd..(ti + 1) * hd]);
            }
        });
    out
}
