//! Generation with a KV cache and ROUGE scoring.

pub mod porter;
pub mod results;
pub mod rouge;
