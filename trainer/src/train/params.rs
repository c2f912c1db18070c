//! Trainable parameters and their gradients as flat f32 buffers: one layout the optimizer, the
//! gradient reduction (bucketed or sharded across ranks) and checkpoints all share.

use std::collections::HashMap;

use anyhow::{Context, ensure};
use candle_core::{DType, Tensor};

use super::optim::Segment;
use crate::model::grads::GradSink;
use crate::model::llama::Llama;
use crate::model::params::ParamId;

/// Where one parameter lives in the flat buffers.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Which parameter.
    pub id: ParamId,
    /// Its tensor shape.
    pub shape: Vec<usize>,
    /// First element in the flat buffers.
    pub offset: usize,
    /// Number of elements.
    pub len: usize,
}

/// The trainable parameters (f32 master values) and their accumulated gradients.
#[derive(Debug)]
pub struct FlatParams {
    entries: Vec<Entry>,
    index: HashMap<ParamId, usize>,
    /// Master values, entry after entry.
    pub values: Vec<f32>,
    /// Gradients, same layout.
    pub grads: Vec<f32>,
}

impl FlatParams {
    /// Copies the model's trainable parameters into flat buffers (gradients zeroed).
    pub fn gather(model: &Llama) -> anyhow::Result<Self> {
        let mut entries = Vec::new();
        let mut values = Vec::new();
        for id in model.trainable() {
            let t = model.param(id)?;
            let data = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
            entries.push(Entry {
                id,
                shape: t.dims().to_vec(),
                offset: values.len(),
                len: data.len(),
            });
            values.extend_from_slice(&data);
        }
        let index = entries.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
        let grads = vec![0.0; values.len()];
        Ok(Self {
            entries,
            index,
            values,
            grads,
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
        self.values.len()
    }

    /// Whether nothing is trainable.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Optimizer segments: one per parameter, with its weight-decay flag.
    pub fn segments(&self) -> Vec<Segment> {
        self.entries
            .iter()
            .map(|e| Segment {
                offset: e.offset,
                len: e.len,
                decay: e.id.decays(),
            })
            .collect()
    }

    /// Writes the master values back into the model's tensors (after an optimizer step).
    pub fn scatter(&self, model: &mut Llama) -> anyhow::Result<()> {
        let device = model.device().clone();
        for e in &self.entries {
            let t = Tensor::from_slice(
                &self.values[e.offset..e.offset + e.len],
                e.shape.as_slice(),
                &device,
            )?;
            model.set_param(e.id, t)?;
        }
        Ok(())
    }

    /// Sets all gradients to zero.
    pub fn zero_grads(&mut self) {
        self.grads.fill(0.0);
    }

    /// One parameter's master values.
    pub fn values_of(&self, id: ParamId) -> Option<&[f32]> {
        self.entry(id)
            .map(|e| &self.values[e.offset..e.offset + e.len])
    }

    /// Overwrites one parameter's master values (e.g. from a checkpoint).
    pub fn set_values(&mut self, id: ParamId, data: &[f32]) -> anyhow::Result<()> {
        let e = self
            .entry(id)
            .with_context(|| format!("{id} is not trainable in this run"))?
            .clone();
        ensure!(
            data.len() == e.len,
            "{id}: {} values, expected {}",
            data.len(),
            e.len
        );
        self.values[e.offset..e.offset + e.len].copy_from_slice(data);
        Ok(())
    }
}

impl GradSink for FlatParams {
    fn add(&mut self, id: ParamId, grad: Tensor) -> anyhow::Result<()> {
        let e = self
            .entry(id)
            .with_context(|| format!("gradient for {id}, which is not trainable"))?;
        let (offset, len) = (e.offset, e.len);
        let data = grad.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        ensure!(
            data.len() == len,
            "gradient of {id} has {} elements, expected {len}",
            data.len()
        );
        for (g, d) in self.grads[offset..offset + len].iter_mut().zip(&data) {
            *g += d;
        }
        Ok(())
    }
}
