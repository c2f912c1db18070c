//! The Llama model: configuration, parameter names, layers with hand-written backward passes,
//! and the model that trains and generates.

pub mod block;
pub mod config;
pub mod grads;
pub mod linear;
pub mod llama;
pub mod params;
pub mod pass;
