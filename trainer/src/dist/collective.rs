//! The collectives distributed training needs, behind one trait so the TCP ring (CPU) and NCCL
//! (GPU) backends are interchangeable.

use std::ops::Range;

use super::error::DistError;

/// Collective operations over f32 buffers among `world()` ranks. Every rank calls each
/// operation in the same order with buffers of the same length.
pub trait Collective: Send {
    /// This process's rank.
    fn rank(&self) -> usize;
    /// Ranks in the world.
    fn world(&self) -> usize;
    /// Sums `buf` across ranks, in place; every rank ends with bit-identical values.
    fn all_reduce_sum(&mut self, buf: &mut [f32]) -> Result<(), DistError>;
    /// Sums `buf` across ranks and returns this rank's shard of the sum
    /// (`shard_range(buf.len(), rank, world)`).
    fn reduce_scatter_sum(&mut self, buf: &[f32]) -> Result<Vec<f32>, DistError>;
    /// Concatenates every rank's shard, in rank order, into a buffer of `total` values.
    fn all_gather(&mut self, shard: &[f32], total: usize) -> Result<Vec<f32>, DistError>;
    /// Copies `root`'s `buf` to every rank.
    fn broadcast(&mut self, buf: &mut [f32], root: usize) -> Result<(), DistError>;
    /// Sums each of `values` across ranks in f64 (exactly as far as f64 goes: every rank's
    /// values travel as f32 pairs and are added in rank order), the same on every rank.
    fn sum_f64(&mut self, values: &[f64]) -> Result<Vec<f64>, DistError> {
        let mut parts = Vec::with_capacity(2 * values.len());
        for &v in values {
            let hi = v as f32;
            parts.extend([hi, (v - f64::from(hi)) as f32]);
        }
        let all = self.all_gather(&parts, parts.len() * self.world())?;
        let mut sums = vec![0.0; values.len()];
        for rank in all.chunks(parts.len()) {
            for (sum, pair) in sums.iter_mut().zip(rank.chunks(2)) {
                *sum += f64::from(pair[0]) + f64::from(pair[1]);
            }
        }
        Ok(sums)
    }

    /// Returns once every rank has called it.
    fn barrier(&mut self) -> Result<(), DistError> {
        self.all_reduce_sum(&mut [0.0])
    }
}

/// The indices of a `len`-long buffer that `rank` owns when it is split among `world` ranks:
/// contiguous, in rank order, the first `len % world` ranks holding one more.
pub fn shard_range(len: usize, rank: usize, world: usize) -> Range<usize> {
    let base = len / world;
    let extra = len % world;
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}
