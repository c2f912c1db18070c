//! Rotary position embedding in Hugging Face's "rotate_half" convention: within each head, element
//! `i` of the first half is rotated with element `i + hd/2` by the angle `position · inv_freq[i]`.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::cpu::{self, dims, read};
use super::{KernelError, Result};

/// Precomputed cos/sin of `position · inv_freq[i]` (f32, as transformers computes them) for
/// positions `0..max_positions`, each a `(max_positions, hd/2)` tensor on the table's device.
#[derive(Debug, Clone)]
pub struct RopeTable {
    cos: Tensor,
    sin: Tensor,
    max_positions: usize,
    half: usize,
}

impl RopeTable {
    /// Builds the table for the rotary frequencies `inv_freq` (one per pair, `hd/2` of them).
    pub fn new(inv_freq: &[f32], max_positions: usize, device: &Device) -> Result<Self> {
        let half = inv_freq.len();
        if half == 0 {
            return Err(KernelError::Argument {
                kernel: "rope",
                detail: "inv_freq is empty".into(),
            });
        }
        let angles = (0..max_positions).flat_map(|p| inv_freq.iter().map(move |f| (p as f32) * f));
        let (cos, sin): (Vec<f32>, Vec<f32>) = angles.map(|a| (a.cos(), a.sin())).unzip();
        Ok(Self {
            cos: Tensor::from_vec(cos, (max_positions, half), device)?,
            sin: Tensor::from_vec(sin, (max_positions, half), device)?,
            max_positions,
            half,
        })
    }

    /// Positions the table covers (`0..max_positions`).
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Head dimension the table rotates (twice the number of frequencies).
    pub fn head_dim(&self) -> usize {
        2 * self.half
    }

    /// `cos(position · inv_freq[i])`, shape `(max_positions, hd/2)`.
    pub fn cos(&self) -> &Tensor {
        &self.cos
    }

    /// `sin(position · inv_freq[i])`, shape `(max_positions, hd/2)`.
    pub fn sin(&self) -> &Tensor {
        &self.sin
    }
}

/// Rotates every head of `x: (N, H, hd)`; row `n` is at `positions[n]`.
pub fn rope(x: &Tensor, table: &RopeTable, positions: &[u32]) -> Result<Tensor> {
    rotate("rope", "x", x, table, positions, false)
}

/// Gradient of [`rope`] for `dy: (N, H, hd)`: the rotation by the opposite angle.
pub fn rope_backward(dy: &Tensor, table: &RopeTable, positions: &[u32]) -> Result<Tensor> {
    rotate("rope_backward", "dy", dy, table, positions, true)
}

/// Rotates by `+angle`, or by `-angle` when `inverse`.
fn rotate(
    kernel: &'static str,
    input: &'static str,
    x: &Tensor,
    table: &RopeTable,
    positions: &[u32],
    inverse: bool,
) -> Result<Tensor> {
    let [n, h, hd] = dims(kernel, input, x)?;
    if hd != table.head_dim() {
        return Err(KernelError::Shape {
            kernel,
            detail: format!(
                "`{input}` has head dim {hd}, the RoPE table was built for {}",
                table.head_dim()
            ),
        });
    }
    cpu::expect_len(kernel, "positions", positions.len(), n)?;
    if let Some((row, &position)) = positions
        .iter()
        .enumerate()
        .find(|&(_, &p)| p as usize >= table.max_positions)
    {
        return Err(KernelError::PositionOutOfRange {
            row,
            position,
            max_positions: table.max_positions,
        });
    }
    match x.device() {
        Device::Cpu => {
            let xs = read(kernel, input, x)?;
            let (cos, sin) = (
                read(kernel, "table.cos", &table.cos)?,
                read(kernel, "table.sin", &table.sin)?,
            );
            let half = table.half;
            let sign = if inverse { -1.0f32 } else { 1.0 };
            let mut y = vec![0.0f32; n * h * hd];
            if !y.is_empty() {
                y.par_chunks_mut(h * hd)
                    .zip(xs.par_chunks(h * hd))
                    .zip(positions.par_iter())
                    .for_each(|((y, x), &p)| {
                        let at = p as usize * half;
                        let (c, s) = (&cos[at..at + half], &sin[at..at + half]);
                        for (y, x) in y.chunks_exact_mut(hd).zip(x.chunks_exact(hd)) {
                            let (y1, y2) = y.split_at_mut(half);
                            let (x1, x2) = x.split_at(half);
                            for i in 0..half {
                                let s = sign * s[i];
                                y1[i] = x1[i] * c[i] - x2[i] * s;
                                y2[i] = x2[i] * c[i] + x1[i] * s;
                            }
                        }
                    });
            }
            cpu::tensor(y, (n, h, hd))
        }
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => super::cuda::rope(x, table, positions, inverse),
        device => Err(cpu::unsupported(kernel, device)),
    }
}
