//! Multi-process training's communication layer: the rendezvous environment torchrun and the
//! operator set, rank 0's key-value store, and the collectives behind one trait with a TCP ring
//! backend for CPU processes (NCCL implements the same trait in CUDA builds).

pub mod collective;
pub mod env;
pub mod error;
pub mod ring;
pub mod store;
mod wire;

pub use collective::{Collective, shard_range};
pub use env::WorldEnv;
pub use error::DistError;
pub use ring::Ring;
