//! The Llama model: configuration, weights, loading, forward/backward, export.

pub mod config;
