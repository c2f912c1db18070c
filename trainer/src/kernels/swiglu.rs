//! The SwiGLU gate of the Llama MLP: `y = silu(gate) · up` with `silu(g) = g / (1 + e^(−g))`.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::Result;
use super::cpu::{self, read};
use super::expf::exp;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// `silu(gate) · up` for `gate, up` of the same shape (usually `(N, F)`).
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    const KERNEL: &str = "swiglu";
    cpu::expect_shape(KERNEL, "up", up, gate.dims())?;
    match gate.device() {
        Device::Cpu => {
            let (g, u) = (read(KERNEL, "gate", gate)?, read(KERNEL, "up", up)?);
            let mut y = vec![0.0f32; g.len()];
            y.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(u.par_chunks(CHUNK))
                .for_each(|((y, g), u)| {
                    for ((y, &g), &u) in y.iter_mut().zip(g).zip(u) {
                        *y = g / (1.0 + exp(-g)) * u;
                    }
                });
            cpu::tensor(y, gate.shape())
        }
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => super::cuda::swiglu(gate, up),
        device => Err(cpu::unsupported(KERNEL, device)),
    }
}

/// Gradients of [`swiglu`] for the upstream gradient `dy`: `(dgate, dup)`.
pub fn swiglu_backward(gate: &Tensor, up: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor)> {
    const KERNEL: &str = "swiglu_backward";
    cpu::expect_shape(KERNEL, "up", up, gate.dims())?;
    cpu::expect_shape(KERNEL, "dy", dy, gate.dims())?;
    match gate.device() {
        Device::Cpu => {
            let (g, u, dys) = (
                read(KERNEL, "gate", gate)?,
                read(KERNEL, "up", up)?,
                read(KERNEL, "dy", dy)?,
            );
            let mut dgate = vec![0.0f32; g.len()];
            let mut dup = vec![0.0f32; g.len()];
            dgate
                .par_chunks_mut(CHUNK)
                .zip(dup.par_chunks_mut(CHUNK))
                .zip(g.par_chunks(CHUNK))
                .zip(u.par_chunks(CHUNK).zip(dys.par_chunks(CHUNK)))
                .for_each(|(((dg, du), g), (u, dy))| {
                    for ((dg, du), ((&g, &u), &dy)) in
                        dg.iter_mut().zip(du).zip(g.iter().zip(u).zip(dy))
                    {
                        let sig = 1.0 / (1.0 + exp(-g));
                        *du = dy * (g * sig);
                        *dg = dy * u * sig * (1.0 + g * (1.0 - sig));
                    }
                });
            Ok((
                cpu::tensor(dgate, gate.shape())?,
                cpu::tensor(dup, gate.shape())?,
            ))
        }
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => super::cuda::swiglu_backward(gate, up, dy),
        device => Err(cpu::unsupported(KERNEL, device)),
    }
}
