//! Generation with a KV cache and ROUGE scoring.
