//! The trainable parameters' layout and their accumulated gradients as one flat f32 buffer:
//! what a backward pass fills and the reduction across ranks (bucketed or sharded) reads. The
//! buffer is in host memory, or on the model's GPU when the optimizer steps there.

use std::collections::HashMap;
use std::ops::Range;

use anyhow::{Context, ensure};
use candle_core::{DType, Tensor};

use super::flat::Flat;
use crate::kernels;
use crate::model::grads::GradSink;
use crate::model::llama::Llama;
use crate::model::params::ParamId;

/// Where one trainable parameter lives in the flat buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Which parameter.
    pub id: ParamId,
    /// Its tensor shape.
    pub shape: Vec<usize>,
    /// First element in the flat buffer.
    pub offset: usize,
    /// Number of elements.
    pub len: usize,
}

impl Entry {
    /// The entry's elements in the flat buffer.
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.len
    }
}

/// Gradients of the model's trainable parameters, entry after entry.
#[derive(Debug)]
pub struct FlatGrads {
    entries: Vec<Entry>,
    index: HashMap<ParamId, usize>,
    /// The gradients.
    pub grads: Flat,
    /// Gradients summed on a GPU and not yet added into a host `grads` ([`FlatGrads::settle`]),
    /// per entry: the device keeps the micro-batches' sums, the host gets one copy per step.
    pending: Vec<Option<Tensor>>,
}

impl FlatGrads {
    /// A zeroed buffer for the model's trainable parameters, in [`Llama::trainable`] order: on the
    /// model's device with `on_device`, else in host memory.
    pub fn for_model(model: &Llama, on_device: bool) -> anyhow::Result<Self> {
        let mut entries = Vec::new();
        let mut offset = 0;
        for id in model.trainable() {
            let shape = model.param(id)?.dims().to_vec();
            let len = shape.iter().product();
            entries.push(Entry {
                id,
                shape,
                offset,
                len,
            });
            offset += len;
        }
        let index = entries.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
        let device = if on_device {
            model.device().clone()
        } else {
            candle_core::Device::Cpu
        };
        Ok(Self {
            pending: vec![None; entries.len()],
            entries,
            index,
            grads: Flat::zeros(offset, &device)?,
        })
    }

    /// The parameters, in buffer order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry of `id`.
    pub fn entry(&self, id: ParamId) -> Option<&Entry> {
        self.index.get(&id).map(|&i| &self.entries[i])
    }

    /// Total number of trainable elements.
    pub fn len(&self) -> usize {
        self.grads.len()
    }

    /// Whether nothing is trainable.
    pub fn is_empty(&self) -> bool {
        self.grads.is_empty()
    }

    /// The gradient of `id`, if the buffer is in host memory.
    pub fn of(&self, id: ParamId) -> Option<&[f32]> {
        Some(&self.grads.host()?[self.entry(id)?.range()])
    }

    /// Sets all gradients to zero.
    pub fn zero(&mut self) -> anyhow::Result<()> {
        self.pending.fill(None);
        self.grads.zero()
    }

    /// Adds the gradients still on a GPU into the flat buffer, in one copy.
    pub fn settle(&mut self) -> anyhow::Result<()> {
        let (at, parts): (Vec<usize>, Vec<Tensor>) = self
            .pending
            .iter_mut()
            .enumerate()
            .filter_map(|(i, p)| p.take().map(|t| (i, t)))
            .unzip();
        if parts.is_empty() {
            return Ok(());
        }
        let grads = self
            .grads
            .host_mut()
            .context("pending GPU gradients, but the flat buffer is not in host memory")?;
        let data = Tensor::cat(&parts, 0)?.to_vec1::<f32>()?;
        let mut offset = 0;
        for i in at {
            let range = self.entries[i].range();
            let len = range.len();
            for (g, d) in grads[range].iter_mut().zip(&data[offset..offset + len]) {
                *g += d;
            }
            offset += len;
        }
        Ok(())
    }

    /// The range of `id` in the flat buffer, checked to hold `count` elements.
    fn range_of(&self, id: ParamId, count: usize) -> anyhow::Result<(usize, Range<usize>)> {
        let i = *self
            .index
            .get(&id)
            .with_context(|| format!("gradient for {id}, which is not trainable"))?;
        let range = self.entries[i].range();
        ensure!(
            count == range.len(),
            "gradient of {id} has {count} elements, expected {}",
            range.len()
        );
        Ok((i, range))
    }
}

impl GradSink for FlatGrads {
    fn add(&mut self, id: ParamId, grad: Tensor) -> anyhow::Result<()> {
        let (i, range) = self.range_of(id, grad.elem_count())?;
        let grads = match &mut self.grads {
            Flat::Device(flat) => return Ok(kernels::accumulate(flat, range.start, &grad)?),
            Flat::Host(grads) => grads,
        };
        let grad = grad.to_dtype(DType::F32)?.flatten_all()?;
        if !grad.device().is_cpu() {
            self.pending[i] = Some(match self.pending[i].take() {
                Some(sum) => (sum + grad)?,
                None => grad,
            });
            return Ok(());
        }
        let data = grad.to_vec1::<f32>()?;
        for (g, d) in grads[range].iter_mut().zip(&data) {
            *g += d;
        }
        Ok(())
    }

    fn in_place(&self, id: ParamId, len: usize) -> anyhow::Result<Option<(Tensor, usize)>> {
        let (_, range) = self.range_of(id, len)?;
        Ok(match &self.grads {
            Flat::Device(flat) => Some((flat.clone(), range.start)),
            Flat::Host(_) => None,
        })
    }
}
