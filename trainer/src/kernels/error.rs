//! Why a kernel refused its inputs.

use candle_core::{DType, DeviceLocation};

/// A kernel call that cannot run, naming the kernel, the input and what is allowed.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The kernel has no implementation for the inputs' device in this build.
    #[error("kernel {kernel} is not available on {device:?} in this build")]
    Unsupported {
        /// Kernel name, e.g. `attention`.
        kernel: &'static str,
        /// Where the input lives.
        device: DeviceLocation,
    },
    /// An input is on another device than the first input.
    #[error("kernel {kernel}: input `{input}` is on {got:?}, the other inputs on {expected:?}")]
    DeviceMismatch {
        /// Kernel name.
        kernel: &'static str,
        /// Input name.
        input: &'static str,
        /// Device of the first input.
        expected: DeviceLocation,
        /// Device of this input.
        got: DeviceLocation,
    },
    /// An input has a dtype the kernel does not take.
    #[error("kernel {kernel}: input `{input}` must be {allowed}, got {got:?}")]
    DType {
        /// Kernel name.
        kernel: &'static str,
        /// Input name.
        input: &'static str,
        /// The input's dtype.
        got: DType,
        /// The dtypes the kernel takes here.
        allowed: &'static str,
    },
    /// Shapes that do not fit together.
    #[error("kernel {kernel}: {detail}")]
    Shape {
        /// Kernel name.
        kernel: &'static str,
        /// Which inputs and dimensions disagree, and what was expected.
        detail: String,
    },
    /// A scalar argument outside its allowed range.
    #[error("kernel {kernel}: {detail}")]
    Argument {
        /// Kernel name.
        kernel: &'static str,
        /// The argument, its value and the allowed range.
        detail: String,
    },
    /// A RoPE position at or beyond the precomputed table.
    #[error(
        "kernel rope: row {row} has position {position}, the table holds positions 0..{max_positions}"
    )]
    PositionOutOfRange {
        /// Row of `x` (and index into `positions`).
        row: usize,
        /// The position given.
        position: u32,
        /// Positions the table was built for.
        max_positions: usize,
    },
    /// A token id at or beyond the vocabulary.
    #[error("kernel {kernel}: token id {id} at index {index} is outside the vocabulary 0..{vocab}")]
    IdOutOfRange {
        /// Kernel name.
        kernel: &'static str,
        /// Index into `ids`.
        index: usize,
        /// The id given.
        id: u32,
        /// Vocabulary size.
        vocab: usize,
    },
    /// A loss target that is neither `-1` (no target) nor a vocabulary entry.
    #[error(
        "kernel lm_head_loss: target {target} of row {row} is outside 0..{vocab} (use -1 for no target)"
    )]
    TargetOutOfRange {
        /// Row of `h`.
        row: usize,
        /// The target given.
        target: i32,
        /// Vocabulary size.
        vocab: usize,
    },
    /// The GPU refused a kernel (compilation, loading or launch).
    #[error("{0}")]
    Cuda(String),
    /// candle failed while building an output tensor.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result of a kernel call.
pub type Result<T> = std::result::Result<T, KernelError>;
