//! The CUDA paths of the kernels. The sources in `kernels.cu` are compiled once per process with
//! NVRTC and loaded into each device; the matrix products are candle matmuls (cuBLAS). Inputs and
//! outputs are f32 or bf16 (all of one call in the same dtype); statistics saved for a backward
//! (`rstd`, `lse`) and weight gradients of norms and embeddings are f32. Every kernel computes
//! in f32.

mod attention;
mod gemm;
mod loss;
mod nf4;
mod norm;
mod optim;
mod pointwise;

pub(super) use attention::{attention, attention_backward};
pub(super) use gemm::{matmul_add, matmul_add_into};
pub(super) use loss::lm_head_loss;
pub use nf4::{Nf4Device, nf4_dequantize};
pub(super) use norm::{rms_norm, rms_norm_backward};
pub(super) use optim::{accumulate, adamw, sum_of_squares, zero};
pub(super) use pointwise::{dropout, embedding, embedding_backward, rope, swiglu, swiglu_backward};

use std::sync::OnceLock;

use candle_core::cuda::CudaDType;
use candle_core::op::BackpropOp;
use candle_core::{CudaDevice, CudaStorage, DType, Device, Shape, Storage, Tensor};
use cudarc::driver::{DevicePtr, DeviceRepr, LaunchConfig, PushKernelArg};

use super::{KernelError, Result};

const SOURCE: &str = include_str!("kernels.cu");
const MODULE: &str = "ferrotune_kernels";

/// Threads per block (a multiple of 32: the block reductions in `kernels.cu` assume it).
pub(super) const THREADS: u32 = 256;

/// The PTX of `kernels.cu`, compiled on first use.
fn ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    PTX.get_or_init(|| {
        cudarc::nvrtc::compile_ptx_with_opts(SOURCE, Default::default())
            .map(|p| p.to_src())
            .map_err(|e| e.to_string())
    })
    .as_deref()
    .map_err(|e| KernelError::Cuda(format!("compiling the CUDA kernels with NVRTC: {e}")))
}

/// A float type the kernels are instantiated for.
pub(super) trait Elem: CudaDType + DeviceRepr + candle_core::WithDType {
    /// Suffix of the kernel names (`rms_norm_f32`, `rms_norm_bf16`).
    const SUFFIX: &'static str;
}

impl Elem for f32 {
    const SUFFIX: &'static str = "f32";
}

impl Elem for half::bf16 {
    const SUFFIX: &'static str = "bf16";
}

/// Calls `$f::<T>(args)` with `T` the element type of `$t`, or fails naming `$input`.
macro_rules! by_dtype {
    ($kernel:expr, $input:expr, $t:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $t.dtype() {
            candle_core::DType::F32 => $f::<f32>($($arg),*),
            candle_core::DType::BF16 => $f::<half::bf16>($($arg),*),
            got => Err($crate::kernels::KernelError::DType {
                kernel: $kernel,
                input: $input,
                got,
                allowed: "f32 or bf16",
            }),
        }
    };
}
pub(super) use by_dtype;

/// The CUDA device of input `name`.
pub(super) fn device<'a>(
    kernel: &'static str,
    name: &'static str,
    t: &'a Tensor,
) -> Result<&'a CudaDevice> {
    match t.device() {
        Device::Cuda(d) => Ok(d),
        other => Err(KernelError::DeviceMismatch {
            kernel,
            input: name,
            expected: candle_core::DeviceLocation::Cuda { gpu_id: 0 },
            got: other.location(),
        }),
    }
}

/// An uninitialised contiguous tensor of `shape` on `dev`.
pub(super) fn output<T: Elem>(dev: &CudaDevice, shape: impl Into<Shape>) -> Result<Tensor> {
    let shape = shape.into();
    // SAFETY: every caller's kernel writes each element before the tensor is read.
    let slice = unsafe { dev.alloc::<T>(shape.elem_count().max(1))? };
    let storage = Storage::Cuda(CudaStorage::wrap_cuda_slice(slice, dev.clone()));
    Ok(Tensor::from_storage(
        storage,
        shape,
        BackpropOp::none(),
        false,
    ))
}

/// A zeroed tensor of `shape` on `dev`.
pub(super) fn zeros<T: Elem>(dev: &CudaDevice, shape: impl Into<Shape>) -> Result<Tensor> {
    Ok(Tensor::zeros(shape, T::DTYPE, &Device::Cuda(dev.clone()))?)
}

/// Whether the first element of `t` lies on a 16-byte boundary (device allocations do), so that
/// kernels can move it 16 bytes at a time.
pub(super) fn aligned16(t: &Tensor) -> bool {
    (t.layout().start_offset() * t.dtype().size_in_bytes()).is_multiple_of(16)
}

/// Host values (ids, positions, masks, tables) copied to `dev` as a 1-D tensor.
pub(super) fn upload<T: candle_core::WithDType>(dev: &CudaDevice, values: &[T]) -> Result<Tensor> {
    Ok(Tensor::from_slice(
        values,
        values.len(),
        &Device::Cuda(dev.clone()),
    )?)
}

/// The device address of the first element of the contiguous tensor `t` on `dev` (`user` names
/// the kernel or routine in errors). The caller keeps `t` alive while the address is in use.
pub(super) fn device_ptr(dev: &CudaDevice, t: &Tensor, user: &str) -> Result<u64> {
    let (storage, layout) = t.storage_and_layout();
    let Some((start, end)) = layout.contiguous_offsets() else {
        return Err(KernelError::Cuda(format!(
            "{user}: an argument is not contiguous"
        )));
    };
    let Storage::Cuda(s) = &*storage else {
        return Err(KernelError::Cuda(format!(
            "{user}: an argument is on {:?}, not the GPU",
            t.device().location()
        )));
    };
    let stream = dev.cuda_stream();
    macro_rules! ptr_of {
        ($ty:ty) => {{
            let view = s.as_cuda_slice::<$ty>()?.slice(start..end);
            let (p, _sync) = view.device_ptr(&stream);
            p
        }};
    }
    Ok(match t.dtype() {
        DType::F32 => ptr_of!(f32),
        DType::BF16 => ptr_of!(half::bf16),
        DType::U32 => ptr_of!(u32),
        DType::I64 => ptr_of!(i64),
        DType::I32 => ptr_of!(i32),
        DType::U8 => ptr_of!(u8),
        DType::F64 => ptr_of!(f64),
        other => {
            return Err(KernelError::Cuda(format!(
                "{user}: no pointer for a {other:?} tensor"
            )));
        }
    })
}

/// One launch of a kernel of `kernels.cu`: arguments in the kernel's order, the tensors among them
/// kept alive until the launch is queued (the stream orders their release after it).
pub(super) struct Launch {
    dev: CudaDevice,
    name: String,
    /// One 8-byte slot per argument; 4-byte arguments use the low half (little-endian).
    args: Vec<u64>,
    keep: Vec<Tensor>,
}

impl Launch {
    /// A launch of the kernel `name` (with its dtype suffix, if any) on `dev`.
    pub(super) fn new(dev: &CudaDevice, name: impl Into<String>) -> Self {
        Self {
            dev: dev.clone(),
            name: name.into(),
            args: Vec::new(),
            keep: Vec::new(),
        }
    }

    /// A launch of `<base>_<suffix of T>`.
    pub(super) fn typed<T: Elem>(dev: &CudaDevice, base: &str) -> Self {
        Self::new(dev, format!("{base}_{}", T::SUFFIX))
    }

    /// A pointer to the elements of `t` (made contiguous), which must be on this device.
    pub(super) fn tensor(mut self, t: &Tensor) -> Result<Self> {
        let t = t.contiguous()?;
        self.args.push(device_ptr(&self.dev, &t, &self.name)?);
        self.keep.push(t);
        Ok(self)
    }

    /// A null pointer (an absent optional input).
    pub(super) fn null(mut self) -> Self {
        self.args.push(0);
        self
    }

    /// An `int` argument.
    pub(super) fn int(mut self, v: usize) -> Result<Self> {
        let v = i32::try_from(v).map_err(|_| {
            KernelError::Cuda(format!(
                "kernel {}: size {v} exceeds a 32-bit int",
                self.name
            ))
        })?;
        self.args.push(u64::from(v as u32));
        Ok(self)
    }

    /// A `float` argument.
    pub(super) fn float(mut self, v: f32) -> Self {
        self.args.push(u64::from(v.to_bits()));
        self
    }

    /// A `size_t` or 64-bit integer argument.
    pub(super) fn u64(mut self, v: u64) -> Self {
        self.args.push(v);
        self
    }

    /// Queues the kernel with `grid` blocks of `block` threads.
    pub(super) fn run(self, grid: (u32, u32), block: u32) -> Result<()> {
        if grid.0 == 0 || grid.1 == 0 {
            return Ok(());
        }
        let func = self
            .dev
            .get_or_load_custom_func(&self.name, MODULE, ptx()?)?;
        let mut builder = func.builder();
        for a in &self.args {
            builder.arg(a);
        }
        let cfg = LaunchConfig {
            grid_dim: (grid.0, grid.1, 1),
            block_dim: (block, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the argument list matches the kernel's signature in kernels.cu (each call site
        // passes them in the declared order and widths), and every pointer is kept alive by
        // `self.keep` until the launch is queued on the device's one stream.
        unsafe { builder.launch(cfg) }
            .map_err(|e| KernelError::Cuda(format!("launching {}: {e}", self.name)))?;
        drop(self.keep);
        Ok(())
    }

    /// Queues a grid-stride kernel over `n` elements.
    pub(super) fn run_elems(self, n: usize) -> Result<()> {
        let blocks = n.div_ceil(THREADS as usize).clamp(1, 65_535 * 8) as u32;
        if n == 0 {
            return Ok(());
        }
        self.run((blocks, 1), THREADS)
    }
}

/// Grid size for one block per row (CUDA allows 2³¹ − 1 blocks in x).
pub(super) fn rows(n: usize) -> Result<(u32, u32)> {
    let n = u32::try_from(n).map_err(|_| KernelError::Cuda(format!("{n} rows exceed one grid")))?;
    Ok((n, 1))
}
