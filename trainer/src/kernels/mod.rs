//! Fused numerical kernels of the Llama decoder, each with a hand-written backward pass.
//!
//! The trainer does not record an autograd tape: every layer runs its forward, keeps the tensors
//! its backward needs, and calls the matching `*_backward` kernel. The GEMMs of the linear layers
//! are candle `matmul`s done by the caller; the kernels here are the fused parts in between.
//!
//! Every public function takes and returns candle [`Tensor`](candle_core::Tensor)s and dispatches
//! on their device: the CPU path (f32, rayon-parallel) and, in a build with the `cuda` feature,
//! the GPU path (f32 or bf16; NVRTC-compiled kernels plus cuBLAS, see `cuda/`). Other devices give
//! [`KernelError::Unsupported`]. Shapes and arguments are checked the same way on every device.
//! Non-contiguous inputs are accepted (they are copied once).
//!
//! # Forward/backward contract: what to save
//!
//! | forward | keep for the backward |
//! | --- | --- |
//! | [`rms_norm`]`(x, w, eps) -> (y, rstd)` | `x`, `w`, `rstd` |
//! | [`rope`]`(x, table, positions) -> y` | `table`, `positions` (the rotation is linear) |
//! | [`attention`]`(q, k, v, mask, scale) -> {out, lse}` | `q`, `k`, `v`, `out`, `lse`, `mask`: no T×T tensor |
//! | [`swiglu`]`(gate, up) -> y` | `gate`, `up` |
//! | [`lm_head_loss`] | nothing: it returns the loss and the gradients in one pass |
//! | [`embedding`]`(ids, table) -> y` | `ids` (and the vocabulary size) |
//! | [`dropout`]`(x, p, seed, streams) -> y` | `p`, `seed`, `streams`: the masks are recomputed |
//!
//! # Determinism
//!
//! Every output element is reduced in a fixed order that depends on the shapes only, never on the
//! rayon thread count, so resumed and distributed runs reproduce losses bit for bit on the same
//! hardware. Matrix products inside a parallel task run single-threaded through `gemm`.

mod attention;
mod cpu;
#[cfg(feature = "cuda")]
mod cuda;
mod dropout;
mod embedding;
mod error;
mod expf;
mod linalg;
mod linear;
mod lm_head_loss;
mod optim;
mod rms_norm;
mod rope;
mod swiglu;

pub use attention::{AttnOutput, attention, attention_backward};
#[cfg(feature = "cuda")]
pub use cuda::{Nf4Device, nf4_dequantize};
pub use dropout::{dropout, dropout_add, dropout_backward, dropout_keep};
pub use embedding::{embedding, embedding_backward};
pub use error::{KernelError, Result};
pub use linear::{linear, matmul_add, matmul_add_into, matmul_t, product_dims};
pub use lm_head_loss::{HeadGrad, LmHeadLoss, lm_head_loss};
pub use optim::{AdamWStep, accumulate, adamw, sum_of_squares, zero};
pub use rms_norm::{rms_norm, rms_norm_backward};
pub use rope::{RopeTable, rope, rope_backward};
pub use swiglu::{swiglu, swiglu_backward};
