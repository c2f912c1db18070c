//! Where a backward pass delivers parameter gradients. The training loop's sink accumulates them
//! into flat buffers (and, distributed, starts reducing full buckets); tests collect them in a map.

use std::collections::BTreeMap;

use candle_core::Tensor;

use super::params::ParamId;
use crate::kernels::matmul_t;

/// Receives each trainable parameter's gradient once per backward pass.
pub trait GradSink {
    /// Adds `grad` to the gradient of `id`.
    fn add(&mut self, id: ParamId, grad: Tensor) -> anyhow::Result<()>;

    /// Adds the product `op(a)·op(b)` (`op(x)` is `xᵀ` when its flag is set) to the gradient of
    /// `id`. A sink whose buffer is f32 on the GPU accumulates it there by one GEMM, with no
    /// product tensor and no rounding of it to the activations' dtype.
    fn add_product(
        &mut self,
        id: ParamId,
        a: &Tensor,
        a_t: bool,
        b: &Tensor,
        b_t: bool,
    ) -> anyhow::Result<()> {
        self.add(id, matmul_t(a, a_t, b, b_t)?)
    }
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
