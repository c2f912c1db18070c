//! The Llama model: configuration, parameter names, layers with hand-written backward passes,
//! the model that trains and generates, and loading and exporting its weights.

pub mod adapter;
pub mod block;
pub mod config;
pub mod export;
pub mod grads;
pub mod linear;
pub mod llama;
pub mod load;
pub mod params;
pub mod pass;
