//! Causal grouped-query attention on the GPU. The products are batched cuBLAS GEMMs over
//! `(B, Hkv)` with the query heads of a group stacked as rows (no repeated keys); one kernel turns
//! a score row into probabilities and its log-sum-exp. The backward recomputes the scores from
//! `q`, `k` and the saved log-sum-exp, so no `T × T` tensor outlives a call.

use candle_core::{DType, Tensor};

use super::{Elem, Launch, THREADS, by_dtype, device, output, rows, upload};
use crate::kernels::Result;
use crate::kernels::attention::{AttnOutput, Geometry};

/// Queries `(B, Tq, H, hd)` → `(B, Hkv, G·Tq, hd)`: query head `kv·G + g`, row `i` goes to row
/// `g·Tq + i` of its key/value head's group.
fn group_queries(x: &Tensor, g: &Geometry) -> Result<Tensor> {
    Ok(x.transpose(1, 2)?
        .contiguous()?
        .reshape((g.b, g.hkv, g.group() * g.tq, g.hd))?)
}

/// The inverse of [`group_queries`].
fn ungroup_queries(x: &Tensor, g: &Geometry) -> Result<Tensor> {
    Ok(x.reshape((g.b, g.h, g.tq, g.hd))?
        .transpose(1, 2)?
        .contiguous()?)
}

/// Keys or values `(B, Tk, Hkv, hd)` → `(B, Hkv, Tk, hd)`, and back.
fn heads_first(x: &Tensor) -> Result<Tensor> {
    Ok(x.transpose(1, 2)?.contiguous()?)
}

/// The key mask on the device, or `None`.
fn mask_tensor(dev: &candle_core::CudaDevice, key_mask: Option<&[u8]>) -> Result<Option<Tensor>> {
    key_mask.map(|m| upload(dev, m)).transpose()
}

fn with_mask(launch: Launch, mask: &Option<Tensor>) -> Result<Launch> {
    match mask {
        Some(m) => launch.tensor(m),
        None => Ok(launch.null()),
    }
}

/// Output and log-sum-exp of attention (shapes checked by the caller into `g`).
pub(in crate::kernels) fn attention(
    g: Geometry,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    key_mask: Option<&[u8]>,
    scale: f32,
) -> Result<AttnOutput> {
    by_dtype!("attention", "q", q, forward(g, q, k, v, key_mask, scale))
}

fn forward<T: Elem>(
    g: Geometry,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    key_mask: Option<&[u8]>,
    scale: f32,
) -> Result<AttnOutput> {
    let dev = device("attention", "q", q)?;
    let qg = group_queries(q, &g)?;
    let (kh, vh) = (
        heads_first(&k.to_dtype(T::DTYPE)?)?,
        heads_first(&v.to_dtype(T::DTYPE)?)?,
    );
    let s = qg.matmul(&kh.t()?)?;
    let n_rows = g.b * g.h * g.tq;
    let p = output::<T>(dev, s.shape())?;
    let lse = output::<f32>(dev, (g.b, g.h, g.tq))?;
    let mask = mask_tensor(dev, key_mask)?;
    let launch = Launch::typed::<T>(dev, "attn_softmax")
        .tensor(&s)?
        .tensor(&p)?
        .tensor(&lse)?
        .int(g.tq)?
        .int(g.tk)?
        .u64((g.h * g.tq) as u64);
    with_mask(launch, &mask)?
        .float(scale)
        .run(rows(n_rows)?, THREADS)?;
    let out = ungroup_queries(&p.matmul(&vh)?, &g)?;
    Ok(AttnOutput { out, lse })
}

/// `(dq, dk, dv)` of [`attention`] (shapes checked by the caller into `g`).
#[allow(clippy::too_many_arguments)] // the forward's inputs and outputs, as the CPU path takes them
pub(in crate::kernels) fn attention_backward(
    g: Geometry,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    out: &Tensor,
    lse: &Tensor,
    dout: &Tensor,
    key_mask: Option<&[u8]>,
    scale: f32,
) -> Result<(Tensor, Tensor, Tensor)> {
    by_dtype!(
        "attention_backward",
        "q",
        q,
        backward(g, q, k, v, out, lse, dout, key_mask, scale)
    )
}

#[allow(clippy::too_many_arguments)]
fn backward<T: Elem>(
    g: Geometry,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    out: &Tensor,
    lse: &Tensor,
    dout: &Tensor,
    key_mask: Option<&[u8]>,
    scale: f32,
) -> Result<(Tensor, Tensor, Tensor)> {
    let dev = device("attention_backward", "q", q)?;
    let qg = group_queries(q, &g)?;
    let (kh, vh) = (
        heads_first(&k.to_dtype(T::DTYPE)?)?,
        heads_first(&v.to_dtype(T::DTYPE)?)?,
    );
    let og = group_queries(&out.to_dtype(T::DTYPE)?, &g)?;
    let dog = group_queries(&dout.to_dtype(T::DTYPE)?, &g)?;
    let n_rows = g.b * g.h * g.tq;
    let delta = output::<f32>(dev, n_rows)?;
    Launch::typed::<T>(dev, "row_dot")
        .tensor(&dog)?
        .tensor(&og)?
        .tensor(&delta)?
        .u64(n_rows as u64)
        .int(g.hd)?
        .run_elems(n_rows * 32)?;
    let s = qg.matmul(&kh.t()?)?;
    let dp = dog.matmul(&vh.t()?)?;
    let p = output::<T>(dev, s.shape())?;
    let ds = output::<T>(dev, s.shape())?;
    let mask = mask_tensor(dev, key_mask)?;
    let launch = Launch::typed::<T>(dev, "attn_grad_scores")
        .tensor(&s)?
        .tensor(&dp)?
        .tensor(&lse.to_dtype(DType::F32)?)?
        .tensor(&delta)?
        .tensor(&p)?
        .tensor(&ds)?
        .int(g.tq)?
        .int(g.tk)?
        .u64((g.h * g.tq) as u64);
    with_mask(launch, &mask)?
        .float(scale)
        .run(rows(n_rows)?, THREADS)?;
    drop((s, dp));
    let dv = p.t()?.matmul(&dog)?.transpose(1, 2)?.contiguous()?;
    let dk = ds.t()?.matmul(&qg)?.transpose(1, 2)?.contiguous()?;
    let dq = ungroup_queries(&ds.matmul(&kh)?, &g)?;
    Ok((dq, dk, dv))
}
