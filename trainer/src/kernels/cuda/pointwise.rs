//! Elementwise and gather kernels on the GPU: SwiGLU, RoPE, dropout, embedding lookup and its
//! deterministic gradient.

use candle_core::Tensor;

use super::{Elem, Launch, THREADS, aligned16, by_dtype, device, output, upload, zeros};
use crate::kernels::Result;
use crate::kernels::rope::RopeTable;

/// `silu(gate) · up`.
pub(in crate::kernels) fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    by_dtype!("swiglu", "gate", gate, swiglu_t(gate, up))
}

fn swiglu_t<T: Elem>(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    let dev = device("swiglu", "gate", gate)?;
    let y = output::<T>(dev, gate.shape())?;
    let n = gate.elem_count();
    Launch::typed::<T>(dev, "swiglu")
        .tensor(gate)?
        .tensor(&up.to_dtype(T::DTYPE)?)?
        .tensor(&y)?
        .u64(n as u64)
        .run_elems(n)?;
    Ok(y)
}

/// `(dgate, dup)` of [`swiglu`] for `dy`.
pub(in crate::kernels) fn swiglu_backward(
    gate: &Tensor,
    up: &Tensor,
    dy: &Tensor,
) -> Result<(Tensor, Tensor)> {
    by_dtype!(
        "swiglu_backward",
        "gate",
        gate,
        swiglu_backward_t(gate, up, dy)
    )
}

fn swiglu_backward_t<T: Elem>(gate: &Tensor, up: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor)> {
    let dev = device("swiglu_backward", "gate", gate)?;
    let dgate = output::<T>(dev, gate.shape())?;
    let dup = output::<T>(dev, gate.shape())?;
    let n = gate.elem_count();
    Launch::typed::<T>(dev, "swiglu_backward")
        .tensor(gate)?
        .tensor(&up.to_dtype(T::DTYPE)?)?
        .tensor(&dy.to_dtype(T::DTYPE)?)?
        .tensor(&dgate)?
        .tensor(&dup)?
        .u64(n as u64)
        .run_elems(n)?;
    Ok((dgate, dup))
}

/// `x: (N, H, hd)` rotated by `±position · inv_freq` (positions checked by the caller).
pub(in crate::kernels) fn rope(
    x: &Tensor,
    table: &RopeTable,
    positions: &[u32],
    inverse: bool,
) -> Result<Tensor> {
    by_dtype!("rope", "x", x, rope_t(x, table, positions, inverse))
}

fn rope_t<T: Elem>(
    x: &Tensor,
    table: &RopeTable,
    positions: &[u32],
    inverse: bool,
) -> Result<Tensor> {
    let dev = device("rope", "x", x)?;
    let (n, h, hd) = x.dims3()?;
    let y = output::<T>(dev, (n, h, hd))?;
    let table_dev = candle_core::Device::Cuda(dev.clone());
    Launch::typed::<T>(dev, "rope")
        .tensor(x)?
        .tensor(&table.cos().to_device(&table_dev)?)?
        .tensor(&table.sin().to_device(&table_dev)?)?
        .tensor(&upload(dev, positions)?)?
        .tensor(&y)?
        .int(n)?
        .int(h)?
        .int(hd / 2)?
        .float(if inverse { -1.0 } else { 1.0 })
        .run_elems(n * h * hd / 2)?;
    Ok(y)
}

/// `base + dropout(x)` (or `dropout(x)`), segment `s` of `seg` elements hashed with `keys[s]`.
pub(in crate::kernels) fn dropout(
    base: Option<&Tensor>,
    x: &Tensor,
    p: f32,
    seg: usize,
    keys: &[u64],
) -> Result<Tensor> {
    by_dtype!("dropout", "x", x, dropout_t(base, x, p, seg, keys))
}

fn dropout_t<T: Elem>(
    base: Option<&Tensor>,
    x: &Tensor,
    p: f32,
    seg: usize,
    keys: &[u64],
) -> Result<Tensor> {
    let dev = device("dropout", "x", x)?;
    let y = output::<T>(dev, x.shape())?;
    let n = x.elem_count();
    let base = base.map(|b| b.to_dtype(T::DTYPE)).transpose()?;
    // Eight elements a thread where they never straddle a segment and load as 16 bytes.
    let by8 = seg.is_multiple_of(8)
        && n.is_multiple_of(8)
        && aligned16(x)
        && base.as_ref().is_none_or(aligned16);
    let launch = Launch::typed::<T>(dev, if by8 { "dropout8" } else { "dropout" });
    let launch = match &base {
        Some(b) => launch.tensor(b)?,
        None => launch.null(),
    };
    // The keys travel as i64 (candle has no u64 dtype); the kernel reads the same bits.
    let keys: Vec<i64> = keys.iter().map(|&k| k as i64).collect();
    let units = if by8 { n / 8 } else { n };
    launch
        .tensor(x)?
        .tensor(&y)?
        .u64(units as u64)
        .u64(seg as u64)
        .tensor(&upload(dev, &keys)?)?
        .float(p)
        .float(1.0 / (1.0 - p))
        .run_elems(units)?;
    Ok(y)
}

/// Rows `ids` of `table: (V, D)` (ids checked by the caller).
pub(in crate::kernels) fn embedding(ids: &[u32], table: &Tensor) -> Result<Tensor> {
    by_dtype!("embedding", "table", table, embedding_t(ids, table))
}

fn embedding_t<T: Elem>(ids: &[u32], table: &Tensor) -> Result<Tensor> {
    let dev = device("embedding", "table", table)?;
    let (_, d) = table.dims2()?;
    let y = output::<T>(dev, (ids.len(), d))?;
    Launch::typed::<T>(dev, "embedding")
        .tensor(&upload(dev, ids)?)?
        .tensor(table)?
        .tensor(&y)?
        .u64(ids.len() as u64)
        .int(d)?
        .run_elems(ids.len() * d)?;
    Ok(y)
}

/// The f32 `(vocab, D)` gradient of [`embedding`]: row `v` sums the rows of `dy` whose id is
/// `v`, in order (ids checked by the caller).
pub(in crate::kernels) fn embedding_backward(
    ids: &[u32],
    dy: &Tensor,
    vocab: usize,
) -> Result<Tensor> {
    by_dtype!(
        "embedding_backward",
        "dy",
        dy,
        embedding_backward_t(ids, dy, vocab)
    )
}

fn embedding_backward_t<T: Elem>(ids: &[u32], dy: &Tensor, vocab: usize) -> Result<Tensor> {
    let dev = device("embedding_backward", "dy", dy)?;
    let (_, d) = dy.dims2()?;
    // Stable sort of the row indices by id, grouped: the distinct ids, where each one's rows start.
    let mut rows: Vec<u32> = (0..ids.len() as u32).collect();
    rows.sort_by_key(|&r| ids[r as usize]);
    let mut uniq = Vec::new();
    let mut starts = Vec::new();
    for (k, &r) in rows.iter().enumerate() {
        let id = ids[r as usize];
        if uniq.last() != Some(&id) {
            uniq.push(id);
            starts.push(k as u32);
        }
    }
    starts.push(rows.len() as u32);
    let out = zeros::<f32>(dev, (vocab, d))?;
    if uniq.is_empty() || d == 0 {
        return Ok(out);
    }
    Launch::typed::<T>(dev, "embedding_backward")
        .tensor(&upload(dev, &uniq)?)?
        .tensor(&upload(dev, &starts)?)?
        .tensor(&upload(dev, &rows)?)?
        .tensor(dy)?
        .tensor(&out)?
        .int(d)?
        .run(
            (uniq.len() as u32, d.div_ceil(THREADS as usize) as u32),
            THREADS,
        )?;
    Ok(out)
}
