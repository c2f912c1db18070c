//! The fused kernels against candle plain-op references: forward against the reference's values,
//! backward against candle's tape autograd on the same reference and against central finite
//! differences, determinism under different rayon thread counts, and input errors; and each GPU
//! path against the CPU one (skipped without a GPU).

mod check;

mod attention;
mod dropout;
mod embedding;
mod gpu;
mod lm_head_loss;
mod rms_norm;
mod rope;
mod swiglu;
