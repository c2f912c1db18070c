//! ferrotune's trainer: a pipeline from config to model + tokenizer, dataset, training loop,
//! checkpoints and export, then evaluation with ROUGE.

pub mod atomic;
pub mod cli;
pub mod convert;
pub mod data;
pub mod device;
pub mod dist;
pub mod eval;
pub mod faults;
pub mod kernels;
pub mod model;
pub mod quant;
pub mod report;
pub mod runtime;
pub mod setup;
pub mod tokenizer;
pub mod train;
