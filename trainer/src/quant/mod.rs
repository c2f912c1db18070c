//! Weight quantisation: NF4 with double-quantised block scales (QLoRA), and the 8-bit blockwise
//! dynamic quantisation those scales use.

pub mod dynamic;
pub mod nf4;

pub use nf4::{Nf4Error, Nf4Tensor};
