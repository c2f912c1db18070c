//! A flat f32 buffer of training state (master values, gradients, AdamW moments) in host memory
//! or on a GPU. On the CPU, and for every ZeRO shard, the state is a `Vec<f32>`; under DDP on a
//! GPU it stays on the device, where the kernels of `kernels::optim` update it in place, so a
//! step copies nothing to the host.

use std::borrow::Cow;

use candle_core::{DType, Device, Tensor};

/// A flat f32 buffer.
#[derive(Debug, Clone)]
pub enum Flat {
    /// In host memory.
    Host(Vec<f32>),
    /// A contiguous 1-D f32 tensor on a GPU. The optimizer's kernels write into its storage, which
    /// clones share.
    Device(Tensor),
}

impl Flat {
    /// `n` zeros on `device` (host memory for the CPU).
    pub fn zeros(n: usize, device: &Device) -> anyhow::Result<Self> {
        Ok(match device {
            Device::Cpu => Self::Host(vec![0.0; n]),
            d => Self::Device(Tensor::zeros(n, DType::F32, d)?),
        })
    }

    /// `values` moved to `device`.
    pub fn from_host(values: Vec<f32>, device: &Device) -> anyhow::Result<Self> {
        Ok(match device {
            Device::Cpu => Self::Host(values),
            d => {
                let n = values.len();
                Self::Device(Tensor::from_vec(values, n, &Device::Cpu)?.to_device(d)?)
            }
        })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Self::Host(v) => v.len(),
            Self::Device(t) => t.elem_count(),
        }
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements, if in host memory.
    pub fn host(&self) -> Option<&[f32]> {
        match self {
            Self::Host(v) => Some(v),
            Self::Device(_) => None,
        }
    }

    /// The elements, mutable, if in host memory.
    pub fn host_mut(&mut self) -> Option<&mut [f32]> {
        match self {
            Self::Host(v) => Some(v),
            Self::Device(_) => None,
        }
    }

    /// The elements: borrowed from host memory, or copied from the GPU.
    pub fn read(&self) -> anyhow::Result<Cow<'_, [f32]>> {
        Ok(match self {
            Self::Host(v) => Cow::Borrowed(v),
            Self::Device(t) => Cow::Owned(t.to_vec1::<f32>()?),
        })
    }

    /// Moves the elements out into host memory (copying them from a GPU), leaving the buffer
    /// empty; [`Flat::from_host`] puts them back where they were.
    pub fn take_host(&mut self) -> anyhow::Result<Vec<f32>> {
        Ok(match std::mem::replace(self, Self::Host(Vec::new())) {
            Self::Host(v) => v,
            Self::Device(t) => t.to_vec1::<f32>()?,
        })
    }

    /// Where the buffer lives.
    pub fn device(&self) -> Device {
        match self {
            Self::Host(_) => Device::Cpu,
            Self::Device(t) => t.device().clone(),
        }
    }

    /// `Σ x²`, accumulated in f64.
    pub fn sum_of_squares(&self) -> anyhow::Result<f64> {
        Ok(match self {
            Self::Host(v) => super::clip::sum_of_squares(v),
            Self::Device(t) => crate::kernels::sum_of_squares(t)?,
        })
    }

    /// Sets every element to zero, in place.
    pub fn zero(&mut self) -> anyhow::Result<()> {
        match self {
            Self::Host(v) => v.fill(0.0),
            Self::Device(t) => crate::kernels::zero(t)?,
        }
        Ok(())
    }
}
