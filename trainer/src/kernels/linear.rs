//! `x·wᵀ` for a projection weight `w: (out, in)`. Few rows (decoding) go through dot products
//! that stream each weight row once without packing it; many rows go through candle's GEMM.
//! [`matmul_add`] adds a product onto an existing output (in place on the GPU), and
//! [`matmul_add_into`] into a slice of a flat f32 buffer on the GPU.

#[cfg(feature = "cuda")]
use candle_core::DType;
use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::Result;
use super::cpu::{dims, read, tensor, unsupported};
use super::linalg::dot;

/// Row counts up to this use the dot-product path: at decoding sizes GEMM spends as long packing
/// the weight as multiplying it.
const SMALL_ROWS: usize = 16;

/// Output features per parallel task.
const CHUNK: usize = 64;

/// `x: (rows, in)` times `w: (out, in)` transposed → `(rows, out)`.
pub fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    const KERNEL: &str = "linear";
    match x.device() {
        Device::Cpu if x.dim(0)? <= SMALL_ROWS => {
            let [rows, inp] = dims(KERNEL, "x", x)?;
            let [out, w_in] = dims(KERNEL, "w", w)?;
            if w_in != inp {
                return Err(candle_core::Error::ShapeMismatchBinaryOp {
                    lhs: x.shape().clone(),
                    rhs: w.shape().clone(),
                    op: "linear",
                }
                .into());
            }
            let (xs, ws) = (read(KERNEL, "x", x)?, read(KERNEL, "w", w)?);
            // Feature-major (out, rows), so each task writes one contiguous block.
            let mut yt = vec![0.0f32; out * rows];
            yt.par_chunks_mut(CHUNK * rows)
                .enumerate()
                .for_each(|(c, block)| {
                    for (k, ys) in block.chunks_mut(rows).enumerate() {
                        let j = c * CHUNK + k;
                        let wj = &ws[j * inp..(j + 1) * inp];
                        for (i, y) in ys.iter_mut().enumerate() {
                            *y = dot(&xs[i * inp..(i + 1) * inp], wj);
                        }
                    }
                });
            let mut y = vec![0.0f32; rows * out];
            for (j, col) in yt.chunks(rows).enumerate() {
                for (i, &v) in col.iter().enumerate() {
                    y[i * out + j] = v;
                }
            }
            tensor(y, (rows, out))
        }
        _ => Ok(x.matmul(&w.t()?)?),
    }
}

/// `c + op(a)·op(b)`, where `op(x)` is `xᵀ` when its flag is set; `c: (M, N)`, `op(a): (M, K)`,
/// `op(b): (K, N)`. On the GPU the product is accumulated into `c`'s own buffer by one cuBLAS
/// call (f32 accumulation, `c` rounded once), so `c` must be a tensor no one else holds, such as
/// a fresh product; its dtype is f32 or that of `a` and `b`. On the CPU it is `c + a·b`.
pub fn matmul_add(c: Tensor, a: &Tensor, a_t: bool, b: &Tensor, b_t: bool) -> Result<Tensor> {
    if product_dims(a, a_t, b, b_t) != Some(c.dims2()?) {
        return Err(mismatch(&c, a, "matmul_add"));
    }
    match c.device() {
        #[cfg(feature = "cuda")]
        Device::Cuda(_)
            if c.is_contiguous() && (c.dtype() == DType::F32 || c.dtype() == a.dtype()) =>
        {
            super::cuda::matmul_add(&c, a, a_t, b, b_t)?;
            Ok(c)
        }
        _ => Ok((&c + matmul_t(a, a_t, b, b_t)?.to_dtype(c.dtype())?)?),
    }
}

/// `op(a)·op(b)`, `op(x)` being `xᵀ` when its flag is set.
pub fn matmul_t(a: &Tensor, a_t: bool, b: &Tensor, b_t: bool) -> Result<Tensor> {
    let op = |x: &Tensor, t: bool| if t { x.t() } else { Ok(x.clone()) };
    Ok(op(a, a_t)?.matmul(&op(b, b_t)?)?)
}

/// `dst[offset..offset + M·N] += op(a)·op(b)`, `op` as in [`matmul_add`], for a flat f32 buffer
/// on the GPU, in place by one cuBLAS call: a weight gradient added into the flat gradient buffer
/// without a product tensor. The CPU keeps that buffer in host memory, so only the GPU path
/// exists.
pub fn matmul_add_into(
    dst: &Tensor,
    offset: usize,
    a: &Tensor,
    a_t: bool,
    b: &Tensor,
    b_t: bool,
) -> Result<()> {
    let mn = product_dims(a, a_t, b, b_t).ok_or_else(|| mismatch(a, b, "matmul_add_into"))?;
    match dst.device() {
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => super::cuda::matmul_add_into(dst, offset, mn, a, a_t, b, b_t),
        device => {
            let _ = (offset, mn);
            Err(unsupported("matmul_add_into", device))
        }
    }
}

/// `(M, N)` of `op(a)·op(b)`, or `None` when the inner sizes or the dtypes differ.
pub fn product_dims(a: &Tensor, a_t: bool, b: &Tensor, b_t: bool) -> Option<(usize, usize)> {
    let dims = |x: &Tensor, t: bool| {
        let (r, c) = x.dims2().ok()?;
        Some(if t { (c, r) } else { (r, c) })
    };
    let ((m, k), (k2, n)) = (dims(a, a_t)?, dims(b, b_t)?);
    (k == k2 && a.dtype() == b.dtype()).then_some((m, n))
}

fn mismatch(lhs: &Tensor, rhs: &Tensor, op: &'static str) -> super::KernelError {
    candle_core::Error::ShapeMismatchBinaryOp {
        lhs: lhs.shape().clone(),
        rhs: rhs.shape().clone(),
        op,
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_matmul_for_few_and_many_rows() {
        let w = Tensor::randn(0f32, 1.0, (70, 33), &Device::Cpu).unwrap();
        for rows in [1, 5, SMALL_ROWS, SMALL_ROWS + 1] {
            let x = Tensor::randn(0f32, 1.0, (rows, 33), &Device::Cpu).unwrap();
            let want = x.matmul(&w.t().unwrap()).unwrap();
            let got = linear(&x, &w).unwrap();
            let diff = (got - &want)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-5, "{rows} rows: {diff}");
        }
    }
}
