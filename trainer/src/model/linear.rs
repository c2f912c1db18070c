//! A projection `y = x·Wᵀ (+ scale·dropout(x)·Aᵀ·Bᵀ)`: a base weight kept dense or NF4-quantised,
//! with an optional LoRA adapter, and its hand-written backward.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use super::grads::GradSink;
use super::params::ParamId;
use super::pass::{Pass, Site};
use crate::kernels::{linear, matmul_add};
use crate::quant::nf4::Nf4Tensor;

/// A projection's base weight, shaped (out, in).
#[derive(Debug, Clone)]
pub enum Weight {
    /// Stored as is.
    Dense(Tensor),
    /// Quantised to NF4 with double-quantised scales (QLoRA); dequantised on use.
    Nf4 {
        /// The quantised weight.
        q: Arc<Nf4Tensor>,
        /// (out, in).
        shape: (usize, usize),
        /// Where the dequantised weight is placed.
        device: Device,
        /// Its dtype.
        dtype: DType,
        /// The quantised bytes on the GPU, dequantised there (a CUDA device only).
        #[cfg(feature = "cuda")]
        gpu: Option<Arc<crate::kernels::Nf4Device>>,
    },
}

impl Weight {
    /// Quantises a dense (out, in) weight to NF4.
    pub fn quantize_nf4(w: &Tensor) -> anyhow::Result<Self> {
        let (out, inp) = w.dims2()?;
        let data = w.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let q = Arc::new(Nf4Tensor::quantize(&data, &[out, inp])?);
        Ok(Self::Nf4 {
            #[cfg(feature = "cuda")]
            gpu: match w.device() {
                Device::Cuda(dev) => Some(Arc::new(crate::kernels::Nf4Device::upload(&q, dev)?)),
                _ => None,
            },
            q,
            shape: (out, inp),
            device: w.device().clone(),
            dtype: w.dtype(),
        })
    }

    /// The weight as a dense tensor (dequantised for NF4).
    pub fn dense(&self) -> anyhow::Result<Tensor> {
        match self {
            Self::Dense(w) => Ok(w.clone()),
            #[cfg(feature = "cuda")]
            Self::Nf4 {
                gpu: Some(gpu),
                dtype,
                ..
            } => Ok(crate::kernels::nf4_dequantize(gpu, *dtype)?),
            Self::Nf4 {
                q,
                shape,
                device,
                dtype,
                ..
            } => Ok(Tensor::from_vec(q.dequantize(), *shape, device)?.to_dtype(*dtype)?),
        }
    }

    /// Converts a dense weight to `dtype`; an NF4 weight dequantises into `dtype` from now on.
    pub fn cast(&mut self, to: DType) -> anyhow::Result<()> {
        match self {
            Self::Dense(w) => *w = w.to_dtype(to)?,
            Self::Nf4 { dtype, .. } => *dtype = to,
        }
        Ok(())
    }

    /// Bytes the weight occupies where it lives (the quantised form for NF4).
    pub fn storage_bytes(&self) -> usize {
        match self {
            Self::Dense(w) => w.elem_count() * w.dtype().size_in_bytes(),
            Self::Nf4 { q, .. } => q.storage_bytes(),
        }
    }

    /// (out, in).
    pub fn shape(&self) -> anyhow::Result<(usize, usize)> {
        match self {
            Self::Dense(w) => Ok(w.dims2()?),
            Self::Nf4 { shape, .. } => Ok(*shape),
        }
    }
}

/// A LoRA adapter: `scale · B·A` added to the base weight, with dropout on its input.
#[derive(Debug, Clone)]
pub struct Lora {
    /// Down-projection, (r, in).
    pub a: Tensor,
    /// Up-projection, (out, r).
    pub b: Tensor,
    /// alpha / r.
    pub scale: f64,
    /// Dropout probability on the adapter's input.
    pub dropout: f32,
}

/// A projection with an optional adapter.
#[derive(Debug, Clone)]
pub struct Linear {
    /// Base weight.
    pub weight: Weight,
    /// Adapter, when this projection is a LoRA target.
    pub lora: Option<Lora>,
    /// Whether the base weight receives gradients (full fine-tuning).
    pub train_base: bool,
}

/// What a projection's backward needs beyond its input: the adapter's hidden activations,
/// already multiplied by its scale.
#[derive(Debug)]
pub struct LinearSaved {
    lora_hidden: Option<Tensor>,
}

impl Linear {
    /// A frozen or trainable projection without adapter.
    pub fn new(weight: Weight, train_base: bool) -> Self {
        Self {
            weight,
            lora: None,
            train_base,
        }
    }

    /// `x` (rows, in) → (rows, out).
    pub fn forward(
        &self,
        x: &Tensor,
        site: Site,
        pass: &Pass,
    ) -> anyhow::Result<(Tensor, LinearSaved)> {
        let w = self.weight.dense()?;
        let mut y = linear(x, &w)?;
        let mut lora_hidden = None;
        if let Some(l) = &self.lora {
            let xd = pass.lora_dropout(x, l.dropout, site)?;
            // The scale multiplies the rank-r activations, not the (rows, out) product.
            let h = (linear(&xd, &l.a)? * l.scale)?;
            y = matmul_add(y, &h, false, &l.b, true)?;
            lora_hidden = Some(h);
        }
        Ok((y, LinearSaved { lora_hidden }))
    }

    /// Gradient of the input for `dy` (rows, out), added onto `acc` when given (the gradient of
    /// another projection of the same input, summed without a separate pass); parameter
    /// gradients go to `sink`.
    #[allow(clippy::too_many_arguments)] // the forward's input and state, plus the accumulator
    pub fn backward(
        &self,
        x: &Tensor,
        saved: LinearSaved,
        dy: &Tensor,
        acc: Option<Tensor>,
        site: Site,
        pass: &Pass,
        sink: &mut dyn GradSink,
    ) -> anyhow::Result<Tensor> {
        let w = self.weight.dense()?;
        let mut dx = match acc {
            Some(acc) => matmul_add(acc, dy, false, &w, false)?,
            None => dy.matmul(&w)?,
        };
        if self.train_base {
            sink.add_product(ParamId::Proj(site.layer, site.module), dy, true, x, false)?;
        }
        if let (Some(l), Some(h)) = (&self.lora, saved.lora_hidden) {
            sink.add_product(ParamId::LoraB(site.layer, site.module), dy, true, &h, false)?;
            let dh = (dy.matmul(&l.b)? * l.scale)?;
            let xd = pass.lora_dropout(x, l.dropout, site)?;
            sink.add_product(
                ParamId::LoraA(site.layer, site.module),
                &dh,
                true,
                &xd,
                false,
            )?;
            dx = pass.lora_dropout_add(&dx, &dh.matmul(&l.a)?, l.dropout, site)?;
        }
        Ok(dx)
    }

    /// The base weight with the adapter folded in: `W + scale·B·A`.
    pub fn merged_weight(&self) -> anyhow::Result<Tensor> {
        let w = self.weight.dense()?;
        Ok(match &self.lora {
            Some(l) => (w + (l.b.matmul(&l.a)? * l.scale)?)?,
            None => w,
        })
    }
}
