//! Fused numerical kernels with hand-written backward passes (CPU now; CUDA behind the `cuda` feature).
