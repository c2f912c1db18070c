//! Token embedding lookup and its deterministic scatter-add gradient.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::cpu::{self, dims, read};
use super::{KernelError, Result};

/// Rows `ids` of `table: (V, D)`, as `(N, D)` with `N = ids.len()`.
pub fn embedding(ids: &[u32], table: &Tensor) -> Result<Tensor> {
    const KERNEL: &str = "embedding";
    let [vocab, d] = dims(KERNEL, "table", table)?;
    check_ids(KERNEL, ids, vocab)?;
    match table.device() {
        Device::Cpu => {
            let t = read(KERNEL, "table", table)?;
            let mut y = vec![0.0f32; ids.len() * d];
            if d > 0 {
                y.par_chunks_mut(d)
                    .zip(ids.par_iter())
                    .for_each(|(y, &id)| {
                        let at = id as usize * d;
                        y.copy_from_slice(&t[at..at + d]);
                    });
            }
            cpu::tensor(y, (ids.len(), d))
        }
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => super::cuda::embedding(ids, table),
        device => Err(cpu::unsupported(KERNEL, device)),
    }
}

/// Gradient of [`embedding`] with respect to the table: `(vocab, D)`, where row `v` is the sum of
/// the rows of `dy: (N, D)` whose id is `v`, added in the order they appear in `ids`.
pub fn embedding_backward(ids: &[u32], dy: &Tensor, vocab: usize) -> Result<Tensor> {
    const KERNEL: &str = "embedding_backward";
    let [n, d] = dims(KERNEL, "dy", dy)?;
    cpu::expect_len(KERNEL, "ids", ids.len(), n)?;
    check_ids(KERNEL, ids, vocab)?;
    match dy.device() {
        Device::Cpu => {
            let g = read(KERNEL, "dy", dy)?;
            // Counting sort of the row indices by id (stable), as offsets into `rows`.
            let mut offsets = vec![0usize; vocab + 1];
            for &id in ids {
                offsets[id as usize + 1] += 1;
            }
            for v in 0..vocab {
                offsets[v + 1] += offsets[v];
            }
            let mut next = offsets.clone();
            let mut rows = vec![0usize; n];
            for (row, &id) in ids.iter().enumerate() {
                rows[next[id as usize]] = row;
                next[id as usize] += 1;
            }
            let mut dt = vec![0.0f32; vocab * d];
            if d > 0 {
                dt.par_chunks_mut(d).enumerate().for_each(|(v, out)| {
                    for &row in &rows[offsets[v]..offsets[v + 1]] {
                        for (o, g) in out.iter_mut().zip(&g[row * d..(row + 1) * d]) {
                            *o += g;
                        }
                    }
                });
            }
            cpu::tensor(dt, (vocab, d))
        }
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => super::cuda::embedding_backward(ids, dy, vocab),
        device => Err(cpu::unsupported(KERNEL, device)),
    }
}

/// Fails on the first id at or beyond `vocab`.
fn check_ids(kernel: &'static str, ids: &[u32], vocab: usize) -> Result<()> {
    match ids
        .iter()
        .enumerate()
        .find(|&(_, &id)| id as usize >= vocab)
    {
        Some((index, &id)) => Err(KernelError::IdOutOfRange {
            kernel,
            index,
            id,
            vocab,
        }),
        None => Ok(()),
    }
}
