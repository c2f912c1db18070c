//! Where a backward pass delivers parameter gradients. The training loop's sink accumulates them
//! into flat buffers (and, distributed, starts reducing full buckets); tests collect them in a map.

use std::collections::BTreeMap;

use candle_core::Tensor;

use super::params::ParamId;

/// Receives each trainable parameter's gradient once per backward pass.
pub trait GradSink {
    /// Adds `grad` to the gradient of `id`.
    fn add(&mut self, id: ParamId, grad: Tensor) -> anyhow::Result<()>;
}

impl GradSink for BTreeMap<ParamId, Tensor> {
    fn add(&mut self, id: ParamId, grad: Tensor) -> anyhow::Result<()> {
        let sum = match self.remove(&id) {
            Some(prev) => (prev + grad)?,
            None => grad,
        };
        self.insert(id, sum);
        Ok(())
    }
}
