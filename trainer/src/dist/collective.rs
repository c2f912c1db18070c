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
