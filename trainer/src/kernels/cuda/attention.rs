//! Causal grouped-query attention on the GPU. The products are batched cuBLAS GEMMs over
//! `(B, Hkv)` with the query heads of a group stacked as rows (no repeated keys); one kernel turns
//! a score row into probabilities and its log-sum-exp. The backward recomputes the scores from
//! `q`, `k` and the saved log-sum-exp, so no `T × T` tensor outlives a call.

use candle_core::{DType, Tensor};

use super::{Elem, Launch, THREADS, aligned16, by_dtype, device, output, upload};
use crate::kernels::Result;
use crate::kernels::attention::{AttnOutput, Geometry};

/// `x: (nb, na, nc, d)` → `(nb, nc, na, d)`: its two middle axes swapped, rows of `d` moved whole
/// (16 bytes at a time when a row's size and the buffer's start allow).
fn swap_axes<T: Elem>(x: &Tensor, [nb, na, nc, d]: [usize; 4]) -> Result<Tensor> {
    let dev = device("attention", "x", x)?;
    let x = x.to_dtype(T::DTYPE)?.contiguous()?;
    let y = output::<T>(dev, (nb, nc, na, d))?;
    let size = T::DTYPE.size_in_bytes();
    let n = nb * na * nc * d;
    if (d * size) % 16 == 0 && aligned16(&x) {
        let units = n * size / 16;
        Launch::new(dev, "swap_axes_16b")
            .tensor(&x)?
            .tensor(&y)?
            .u64(units as u64)
            .int(na)?
            .int(nc)?
            .int(d * size / 16)?
            .run_elems(units)?;
    } else {
        Launch::typed::<T>(dev, "swap_axes")
            .tensor(&x)?
            .tensor(&y)?
            .u64(n as u64)
            .int(na)?
            .int(nc)?
            .int(d)?
            .run_elems(n)?;
    }
    Ok(y)
}

/// Queries `(B, Tq, H, hd)` → `(B, Hkv, G·Tq, hd)`: query head `kv·G + g`, row `i` goes to row
/// `g·Tq + i` of its key/value head's group.
fn group_queries<T: Elem>(x: &Tensor, g: &Geometry) -> Result<Tensor> {
    Ok(swap_axes::<T>(x, [g.b, g.tq, g.h, g.hd])?.reshape((g.b, g.hkv, g.group() * g.tq, g.hd))?)
}

/// The inverse of [`group_queries`].
fn ungroup_queries<T: Elem>(x: &Tensor, g: &Geometry) -> Result<Tensor> {
    swap_axes::<T>(x, [g.b, g.h, g.tq, g.hd])
}

/// Keys or values `(B, Tk, Hkv, hd)` → `(B, Hkv, Tk, hd)`.
fn heads_first<T: Elem>(x: &Tensor, g: &Geometry) -> Result<Tensor> {
    swap_axes::<T>(x, [g.b, g.tk, g.hkv, g.hd])
}

/// The inverse of [`heads_first`].
fn heads_last<T: Elem>(x: &Tensor, g: &Geometry) -> Result<Tensor> {
    swap_axes::<T>(x, [g.b, g.hkv, g.tk, g.hd])
}

/// The key mask on the device, or `None`.
fn mask_tensor(dev: &candle_core::CudaDevice, key_mask: Option<&[u8]>) -> Result<Option<Tensor>> {
    key_mask.map(|m| upload(dev, m)).transpose()
}

/// Blocks of [`THREADS`] threads for one warp per row.
fn warps(n_rows: usize) -> Result<(u32, u32)> {
    let blocks = (n_rows * 32).div_ceil(THREADS as usize);
    let blocks = u32::try_from(blocks)
        .map_err(|_| crate::kernels::KernelError::Cuda(format!("{n_rows} rows exceed one grid")))?;
    Ok((blocks, 1))
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
    let qg = group_queries::<T>(q, &g)?;
    let (kh, vh) = (heads_first::<T>(k, &g)?, heads_first::<T>(v, &g)?);
    let s = qg.matmul(&kh.t()?)?;
    let n_rows = g.b * g.h * g.tq;
    let p = output::<T>(dev, s.shape())?;
    let lse = output::<f32>(dev, (g.b, g.h, g.tq))?;
    let mask = mask_tensor(dev, key_mask)?;
    let launch = Launch::typed::<T>(dev, "attn_softmax")
        .tensor(&s)?
        .tensor(&p)?
        .tensor(&lse)?
        .u64(n_rows as u64)
        .int(g.tq)?
        .int(g.tk)?
        .u64((g.h * g.tq) as u64);
    with_mask(launch, &mask)?
        .float(scale)
        .run(warps(n_rows)?, THREADS)?;
    let out = ungroup_queries::<T>(&p.matmul(&vh)?, &g)?;
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
    let qg = group_queries::<T>(q, &g)?;
    let (kh, vh) = (heads_first::<T>(k, &g)?, heads_first::<T>(v, &g)?);
    let og = group_queries::<T>(out, &g)?;
    let dog = group_queries::<T>(dout, &g)?;
    let n_rows = g.b * g.h * g.tq;
    let delta = output::<f32>(dev, n_rows)?;
    Launch::typed::<T>(dev, "row_dot")
        .tensor(&dog)?
        .tensor(&og)?
        .tensor(&delta)?
        .u64(n_rows as u64)
        .int(g.hd)?
        .run(warps(n_rows)?, THREADS)?;
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
        .u64(n_rows as u64)
        .int(g.tq)?
        .int(g.tk)?
        .u64((g.h * g.tq) as u64);
    with_mask(launch, &mask)?
        .float(scale)
        .run(warps(n_rows)?, THREADS)?;
    drop((s, dp));
    let dv = heads_last::<T>(&p.t()?.matmul(&dog)?, &g)?;
    let dk = heads_last::<T>(&ds.t()?.matmul(&qg)?, &g)?;
    let dq = ungroup_queries::<T>(&ds.matmul(&kh)?, &g)?;
    Ok((dq, dk, dv))
}
