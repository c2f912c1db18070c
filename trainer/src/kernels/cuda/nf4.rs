//! NF4 weights resident on the GPU, dequantised there by one kernel into the compute dtype.

use candle_core::{CudaDevice, DType, Tensor};

use super::{Elem, Launch, output, upload};
use crate::kernels::{KernelError, Result};
use crate::quant::dynamic::dynamic_map;
use crate::quant::nf4::{NF4_CODE, Nf4Tensor};

/// The parts of an [`Nf4Tensor`] copied to one GPU.
#[derive(Debug, Clone)]
pub struct Nf4Device {
    shape: Vec<usize>,
    packed: Tensor,
    codes: Tensor,
    scales: Tensor,
    offset: f32,
    code_table: Tensor,
    dynamic: Tensor,
}

impl Nf4Device {
    /// Copies `q` to `dev`.
    pub fn upload(q: &Nf4Tensor, dev: &CudaDevice) -> Result<Self> {
        Ok(Self {
            shape: q.shape().to_vec(),
            packed: upload(dev, q.packed())?,
            codes: upload(dev, q.absmax_codes())?,
            scales: upload(dev, q.absmax_scale())?,
            offset: q.absmax_offset(),
            code_table: upload(dev, &NF4_CODE)?,
            dynamic: upload(dev, dynamic_map())?,
        })
    }

    /// Bytes on the device: packed values, block codes and scales.
    pub fn storage_bytes(&self) -> usize {
        self.packed.elem_count() + self.codes.elem_count() + 4 * self.scales.elem_count() + 4
    }
}

/// The dequantised weight in `dtype` (f32 or bf16); bit-exact with the CPU path in f32.
pub fn nf4_dequantize(q: &Nf4Device, dtype: DType) -> Result<Tensor> {
    match dtype {
        DType::F32 => dequantize_t::<f32>(q),
        DType::BF16 => dequantize_t::<half::bf16>(q),
        got => Err(KernelError::DType {
            kernel: "nf4_dequantize",
            input: "dtype",
            got,
            allowed: "f32 or bf16",
        }),
    }
}

fn dequantize_t<T: Elem>(q: &Nf4Device) -> Result<Tensor> {
    let dev = super::device("nf4_dequantize", "packed", &q.packed)?;
    let out = output::<T>(dev, q.shape.as_slice())?;
    let n = out.elem_count();
    Launch::typed::<T>(dev, "nf4_dequantize")
        .tensor(&q.packed)?
        .tensor(&q.codes)?
        .tensor(&q.scales)?
        .tensor(&q.code_table)?
        .tensor(&q.dynamic)?
        .float(q.offset)
        .tensor(&out)?
        .u64(n as u64)
        .run_elems(n)?;
    Ok(out)
}
