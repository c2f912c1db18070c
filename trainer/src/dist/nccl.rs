//! The NCCL backend of [`Collective`] (CUDA builds): one communicator per process on its GPU's
//! stream, its unique id published by rank 0 through the store. Buffers are host f32 slices, as
//! the trait takes them: each call copies them to the GPU, runs the collective and copies back.

use std::time::Duration;

use candle_core::Device;
use cudarc::nccl::{Comm, Id, ReduceOp};

use super::collective::{Collective, shard_range};
use super::error::DistError;
use super::{WorldEnv, store};

/// A communicator of `world` ranks over NCCL.
pub struct Nccl {
    comm: SendComm,
    rank: usize,
    world: usize,
}

/// The communicator, moved between threads but used by one at a time (every trait method takes
/// `&mut self`).
struct SendComm(Comm);

// SAFETY: an NCCL communicator may be used from any thread as long as calls do not overlap,
// which `&mut self` on every collective guarantees.
unsafe impl Send for SendComm {}

impl Nccl {
    /// Joins the world on `device` (the GPU of this rank's LOCAL_RANK).
    pub fn connect(env: &WorldEnv, device: &Device, timeout: Duration) -> Result<Self, DistError> {
        let (rank, world) = (env.rank(), env.world_size);
        let fail = |what: String| DistError::Mismatch {
            rank,
            message: what,
        };
        let stream = device
            .as_cuda_device()
            .map_err(|_| fail("distributed.backend nccl needs training.device cuda".into()))?
            .cuda_stream();
        let id = if world == 1 {
            Id::new().map_err(|e| fail(format!("creating the NCCL id: {e:?}")))?
        } else {
            let mut client = store::rendezvous(env, timeout)?;
            if rank == 0 {
                let id = Id::new().map_err(|e| fail(format!("creating the NCCL id: {e:?}")))?;
                let bytes: Vec<u8> = id.internal().iter().map(|&c| c as u8).collect();
                client.set("nccl/id", &bytes)?;
                id
            } else {
                let bytes = client.get("nccl/id", "rank 0")?;
                let raw: [std::ffi::c_char; 128] = bytes
                    .iter()
                    .map(|&b| b as std::ffi::c_char)
                    .collect::<Vec<_>>()
                    .try_into()
                    .map_err(|_| {
                        fail(format!(
                            "rank 0 published an NCCL id of {} bytes",
                            bytes.len()
                        ))
                    })?;
                Id::uninit(raw)
            }
        };
        let comm = Comm::from_rank(stream, rank, world, id)
            .map_err(|e| fail(format!("joining the NCCL communicator: {e:?}")))?;
        Ok(Self {
            comm: SendComm(comm),
            rank,
            world,
        })
    }

    fn error(&self, what: &str, e: impl std::fmt::Debug) -> DistError {
        DistError::Mismatch {
            rank: self.rank,
            message: format!("NCCL {what}: {e:?}"),
        }
    }

    /// `buf` on the GPU.
    fn upload(&self, buf: &[f32]) -> Result<cudarc::driver::CudaSlice<f32>, DistError> {
        self.comm
            .0
            .stream()
            .clone_htod(buf)
            .map_err(|e| self.error("copy to the GPU", e))
    }

    fn download(&self, buf: &cudarc::driver::CudaSlice<f32>) -> Result<Vec<f32>, DistError> {
        self.comm
            .0
            .stream()
            .clone_dtoh(buf)
            .map_err(|e| self.error("copy from the GPU", e))
    }
}

impl Collective for Nccl {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.world
    }

    fn all_reduce_sum(&mut self, buf: &mut [f32]) -> Result<(), DistError> {
        if buf.is_empty() {
            return Ok(());
        }
        let mut dev = self.upload(buf)?;
        self.comm
            .0
            .all_reduce_in_place(&mut dev, &ReduceOp::Sum)
            .map_err(|e| self.error("all-reduce", e))?;
        buf.copy_from_slice(&self.download(&dev)?);
        Ok(())
    }

    /// The shards of [`shard_range`] can differ in length by one, which NCCL's reduce-scatter
    /// (equal counts) does not take: this sums the whole buffer and keeps this rank's part.
    fn reduce_scatter_sum(&mut self, buf: &[f32]) -> Result<Vec<f32>, DistError> {
        let mut sum = buf.to_vec();
        self.all_reduce_sum(&mut sum)?;
        Ok(sum[shard_range(buf.len(), self.rank, self.world)].to_vec())
    }

    /// Shards are padded to the longest one for NCCL's equal-count all-gather, then unpadded.
    fn all_gather(&mut self, shard: &[f32], total: usize) -> Result<Vec<f32>, DistError> {
        let longest = shard_range(total, 0, self.world).len();
        if shard.len() != shard_range(total, self.rank, self.world).len() {
            return Err(DistError::Mismatch {
                rank: self.rank,
                message: format!(
                    "all-gather of {total} values got a shard of {}",
                    shard.len()
                ),
            });
        }
        if longest == 0 {
            return Ok(Vec::new());
        }
        let mut padded = shard.to_vec();
        padded.resize(longest, 0.0);
        let send = self.upload(&padded)?;
        let mut recv = self
            .comm
            .0
            .stream()
            .alloc_zeros::<f32>(longest * self.world)
            .map_err(|e| self.error("allocation", e))?;
        self.comm
            .0
            .all_gather(&send, &mut recv)
            .map_err(|e| self.error("all-gather", e))?;
        let all = self.download(&recv)?;
        Ok((0..self.world)
            .flat_map(|r| {
                let len = shard_range(total, r, self.world).len();
                all[r * longest..r * longest + len].iter().copied()
            })
            .collect())
    }

    fn broadcast(&mut self, buf: &mut [f32], root: usize) -> Result<(), DistError> {
        if buf.is_empty() {
            return Ok(());
        }
        let mut dev = self.upload(buf)?;
        self.comm
            .0
            .broadcast_in_place(&mut dev, root as i32)
            .map_err(|e| self.error("broadcast", e))?;
        buf.copy_from_slice(&self.download(&dev)?);
        Ok(())
    }
}
