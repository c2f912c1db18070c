//! Multi-process training's communication layer: the rendezvous environment torchrun and the
//! operator set, rank 0's key-value store, and the collectives behind one trait with a TCP ring
//! backend for CPU processes (NCCL implements the same trait in CUDA builds).

pub mod collective;
pub mod env;
pub mod error;
pub mod launch;
#[cfg(feature = "cuda")]
pub mod nccl;
pub mod ring;
pub mod store;
mod wire;

pub use collective::{Collective, shard_range};
pub use env::WorldEnv;
pub use error::DistError;
pub use ring::Ring;

use std::time::Duration;

use candle_core::Device;
use ferrotune_config::{CommBackend, DistributedConfig};

/// Joins the world `env` describes with the backend `config` asks for; `auto` is NCCL when the
/// model is on a GPU, the TCP ring otherwise.
pub fn connect(
    env: &WorldEnv,
    config: &DistributedConfig,
    device: &Device,
) -> anyhow::Result<Box<dyn Collective>> {
    let timeout = Duration::from_secs(config.timeout_seconds);
    match (config.backend, device) {
        #[cfg(feature = "cuda")]
        (CommBackend::Nccl | CommBackend::Auto, Device::Cuda(_)) => {
            Ok(Box::new(nccl::Nccl::connect(env, device, timeout)?))
        }
        (CommBackend::Nccl, _) => anyhow::bail!(
            "distributed.backend: nccl needs a CUDA build of ferrotune and training.device cuda; \
             use tcp (or auto) on CPU"
        ),
        (CommBackend::Auto | CommBackend::Tcp, _) => Ok(Box::new(Ring::connect(env, timeout)?)),
    }
}
