//! Borrowing the f32 elements of CPU tensors, checking shapes, and wrapping results as tensors.

use std::ops::Deref;

use candle_core::{CpuStorage, DType, Device, Shape, Storage, Tensor};
use parking_lot::{MappedRwLockReadGuard, RwLockReadGuard};

use super::{KernelError, Result};

/// The row-major f32 elements of a CPU tensor: borrowed when it is contiguous, copied otherwise.
pub(super) enum F32Slice<'a> {
    Borrowed(MappedRwLockReadGuard<'a, [f32]>),
    Owned(Vec<f32>),
}

impl Deref for F32Slice<'_> {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        match self {
            Self::Borrowed(guard) => guard,
            Self::Owned(data) => data,
        }
    }
}

/// The elements of input `name` of `kernel`, which must be an f32 tensor on the CPU.
pub(super) fn read<'a>(
    kernel: &'static str,
    name: &'static str,
    t: &'a Tensor,
) -> Result<F32Slice<'a>> {
    if !t.device().is_cpu() {
        return Err(KernelError::DeviceMismatch {
            kernel,
            input: name,
            expected: Device::Cpu.location(),
            got: t.device().location(),
        });
    }
    if t.dtype() != DType::F32 {
        return Err(KernelError::DType {
            kernel,
            input: name,
            got: t.dtype(),
            allowed: "f32 on the CPU",
        });
    }
    let (storage, layout) = t.storage_and_layout();
    if let Some((start, end)) = layout.contiguous_offsets() {
        let mapped = RwLockReadGuard::try_map(storage, |s| match s {
            Storage::Cpu(CpuStorage::F32(data)) => Some(&data[start..end]),
            _ => None,
        });
        if let Ok(slice) = mapped {
            return Ok(F32Slice::Borrowed(slice));
        }
    } else {
        drop(storage);
    }
    Ok(F32Slice::Owned(t.flatten_all()?.to_vec1::<f32>()?))
}

/// The dimensions of input `name`, which must have rank `R`.
pub(super) fn dims<const R: usize>(
    kernel: &'static str,
    name: &'static str,
    t: &Tensor,
) -> Result<[usize; R]> {
    t.dims().try_into().map_err(|_| KernelError::Shape {
        kernel,
        detail: format!(
            "`{name}` must have {R} dimensions, got shape {:?}",
            t.dims()
        ),
    })
}

/// Fails unless input `name` has exactly the shape `expected`.
pub(super) fn expect_shape(
    kernel: &'static str,
    name: &'static str,
    t: &Tensor,
    expected: &[usize],
) -> Result<()> {
    if t.dims() == expected {
        Ok(())
    } else {
        Err(KernelError::Shape {
            kernel,
            detail: format!("`{name}` must have shape {expected:?}, got {:?}", t.dims()),
        })
    }
}

/// Fails unless a per-row slice argument has one entry per row.
pub(super) fn expect_len(
    kernel: &'static str,
    name: &'static str,
    len: usize,
    expected: usize,
) -> Result<()> {
    if len == expected {
        Ok(())
    } else {
        Err(KernelError::Shape {
            kernel,
            detail: format!("`{name}` must have {expected} entries, got {len}"),
        })
    }
}

/// A CPU tensor holding `data` with `shape`.
pub(super) fn tensor(data: Vec<f32>, shape: impl Into<Shape>) -> Result<Tensor> {
    Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
}

/// The error for a kernel called on a device this build has no implementation for.
pub(super) fn unsupported(kernel: &'static str, device: &Device) -> KernelError {
    KernelError::Unsupported {
        kernel,
        device: device.location(),
    }
}
