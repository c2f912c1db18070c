//! Multi-process training's communication layer: the rendezvous environment torchrun and the
//! operator set, rank 0's key-value store, and the collectives behind one trait with a TCP ring
//! backend for CPU processes (NCCL implements the same trait in CUDA builds).

pub mod collective;
pub mod env;
pub mod error;
pub mod launch;
pub mod ring;
pub mod store;
mod wire;

pub use collective::{Collective, shard_range};
pub use env::WorldEnv;
pub use error::DistError;
pub use ring::Ring;

use std::time::Duration;

use ferrotune_config::{CommBackend, DistributedConfig};

/// Joins the world `env` describes with the backend `config` asks for.
pub fn connect(env: &WorldEnv, config: &DistributedConfig) -> anyhow::Result<Box<dyn Collective>> {
    match config.backend {
        CommBackend::Nccl => anyhow::bail!(
            "distributed.backend: nccl needs a CUDA build of ferrotune and CUDA devices; \
             use tcp (or auto) on CPU"
        ),
        CommBackend::Auto | CommBackend::Tcp => Ok(Box::new(Ring::connect(
            env,
            Duration::from_secs(config.timeout_seconds),
        )?)),
    }
}
