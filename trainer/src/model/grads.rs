//! Where a backward pass delivers parameter gradients. The training loop's sink accumulates them
//! into flat buffers (and, distributed, starts reducing full buckets); tests collect them in a map.

use std::collections::BTreeMap;

use anyhow::Context;
use candle_core::Tensor;

use super::params::ParamId;
use crate::kernels::{matmul_add_into, matmul_t, product_dims};

/// Receives each trainable parameter's gradient once per backward pass.
pub trait GradSink {
    /// Adds `grad` to the gradient of `id`.
    fn add(&mut self, id: ParamId, grad: Tensor) -> anyhow::Result<()>;

    /// Where the gradient of `id` (checked to have `len` elements) is summed in place on a GPU:
    /// a flat f32 buffer and the offset of its slice, for kernels that add into it themselves.
    /// `None` for a sink that takes tensors, the default.
    fn in_place(&self, id: ParamId, len: usize) -> anyhow::Result<Option<(Tensor, usize)>> {
        let _ = (id, len);
        Ok(None)
    }

    /// Adds the product `op(a)·op(b)` (`op(x)` is `xᵀ` when its flag is set) to the gradient of
    /// `id`: into the sink's GPU buffer by one GEMM where it has one (no product tensor, and no
    /// rounding of it to the activations' dtype), else as a tensor.
    fn add_product(
        &mut self,
        id: ParamId,
        a: &Tensor,
        a_t: bool,
        b: &Tensor,
        b_t: bool,
    ) -> anyhow::Result<()> {
        let (m, n) = product_dims(a, a_t, b, b_t).with_context(|| {
            format!(
                "gradient of {id}: {:?} and {:?} do not multiply",
                a.dims(),
                b.dims()
            )
        })?;
        match self.in_place(id, m * n)? {
            Some((flat, offset)) => Ok(matmul_add_into(&flat, offset, a, a_t, b, b_t)?),
            None => self.add(id, matmul_t(a, a_t, b, b_t)?),
        }
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
