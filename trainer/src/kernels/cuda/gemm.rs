//! `C += op(A)·op(B)` through cuBLAS with C updated in place: the LoRA product added onto the
//! base projection's output, the LM head's weight gradient summed over row chunks into an f32
//! buffer, and weight gradients added into the flat f32 gradient buffer, each without a separate
//! product tensor and addition pass.

use candle_core::{DType, Tensor};
use cudarc::cublas::sys;

use super::optim::flat_f32;
use super::{device, device_ptr};
use crate::kernels::{KernelError, Result};

fn cuda_type(input: &'static str, t: &Tensor) -> Result<sys::cudaDataType> {
    match t.dtype() {
        DType::F32 => Ok(sys::cudaDataType::CUDA_R_32F),
        DType::BF16 => Ok(sys::cudaDataType::CUDA_R_16BF),
        got => Err(KernelError::DType {
            kernel: "matmul_add",
            input,
            got,
            allowed: "f32 or bf16",
        }),
    }
}

fn int(v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| KernelError::Cuda(format!("matmul_add: size {v} exceeds i32")))
}

/// `c += op(a)·op(b)` in place, `op(x)` being `xᵀ` when its flag is set. `c` is a contiguous
/// `(M, N)` f32 tensor or one of the dtype of `a` and `b` (checked by the caller).
pub(in crate::kernels) fn matmul_add(
    c: &Tensor,
    a: &Tensor,
    a_t: bool,
    b: &Tensor,
    b_t: bool,
) -> Result<()> {
    let dev = device("matmul_add", "c", c)?;
    let (a, b) = (a.contiguous()?, b.contiguous()?);
    let (m, n) = c.dims2()?;
    let k = if a_t { a.dim(0)? } else { a.dim(1)? };
    // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: cuBLAS sees B's buffer first.
    let op = |t| {
        if t {
            sys::cublasOperation_t::CUBLAS_OP_T
        } else {
            sys::cublasOperation_t::CUBLAS_OP_N
        }
    };
    let (lda, ldb) = (if b_t { k } else { n }, if a_t { m } else { k });
    let (pa, pb, pc) = (
        device_ptr(dev, &b, "matmul_add")?,
        device_ptr(dev, &a, "matmul_add")?,
        device_ptr(dev, c, "matmul_add")?,
    );
    let (alpha, beta) = (1f32, 1f32);
    let blas = dev.cublas_handle();
    // SAFETY: the three pointers address live, contiguous buffers of the shapes checked by the
    // caller (`a`, `b` and `c` outlive the call, and cuBLAS runs on the device's one stream, so
    // their release is ordered after it); alpha and beta are host f32 values, as the 32F
    // compute type requires.
    unsafe {
        cudarc::cublas::result::gemm_ex(
            *blas.handle(),
            op(b_t),
            op(a_t),
            int(n)?,
            int(m)?,
            int(k)?,
            (&alpha as *const f32).cast(),
            pa as *const _,
            cuda_type("b", &b)?,
            int(lda)?,
            pb as *const _,
            cuda_type("a", &a)?,
            int(ldb)?,
            (&beta as *const f32).cast(),
            pc as *mut _,
            cuda_type("c", c)?,
            int(n)?,
            sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT_TENSOR_OP,
        )
    }
    .map_err(|e| KernelError::Cuda(format!("matmul_add: cuBLAS: {e:?}")))
}

/// `dst[offset..offset + m·n] += op(a)·op(b)` in place, for a flat f32 `dst` and an `(m, n)`
/// product whose operand shapes the caller checked.
pub(in crate::kernels) fn matmul_add_into(
    dst: &Tensor,
    offset: usize,
    (m, n): (usize, usize),
    a: &Tensor,
    a_t: bool,
    b: &Tensor,
    b_t: bool,
) -> Result<()> {
    flat_f32("matmul_add_into", "dst", dst, offset + m * n)?;
    let c = dst.narrow(0, offset, m * n)?.reshape((m, n))?;
    matmul_add(&c, a, a_t, b, b_t)
}
