//! The rendezvous environment: MASTER_ADDR, MASTER_PORT, WORLD_SIZE, NODE_RANK, NPROC_PER_NODE
//! and LOCAL_RANK, as torchrun and the operator set them.

use super::error::DistError;

/// Where this process stands in the world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorldEnv {
    /// Host of rank 0's store.
    pub master_addr: String,
    /// Port of rank 0's store.
    pub master_port: u16,
    /// Processes in the whole job.
    pub world_size: usize,
    /// This process's node.
    pub node_rank: usize,
    /// Processes on each node.
    pub nproc_per_node: usize,
    /// This process's index on its node.
    pub local_rank: usize,
}

impl WorldEnv {
    /// A world of `world_size` processes on this machine, store on loopback `port`.
    pub fn local(world_size: usize, rank: usize, port: u16) -> Self {
        Self {
            master_addr: "127.0.0.1".into(),
            master_port: port,
            world_size,
            node_rank: 0,
            nproc_per_node: world_size,
            local_rank: rank,
        }
    }

    /// Reads the environment through `var`; None when neither WORLD_SIZE nor NPROC_PER_NODE is
    /// set (one process).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, DistError> {
        // Without WORLD_SIZE, NPROC_PER_NODE alone (times NNODES) still asks for a local launch.
        let Some(world) = var("WORLD_SIZE").or_else(|| {
            let nproc: usize = var("NPROC_PER_NODE")?.trim().parse().ok()?;
            let nodes: usize = var("NNODES").map_or(Some(1), |n| n.trim().parse().ok())?;
            Some((nproc * nodes).to_string())
        }) else {
            return Ok(None);
        };
        let number = |name: &'static str, value: Option<String>, default: usize| match value {
            None => Ok(default),
            Some(v) => v.trim().parse::<usize>().map_err(|_| DistError::Env {
                name,
                value: v,
                problem: "must be a whole number".into(),
            }),
        };
        let world_size = number("WORLD_SIZE", Some(world.clone()), 1)?;
        let nproc_per_node = number("NPROC_PER_NODE", var("NPROC_PER_NODE"), 1)?;
        let node_rank = number("NODE_RANK", var("NODE_RANK"), 0)?;
        let local_rank = number("LOCAL_RANK", var("LOCAL_RANK"), 0)?;
        let master_port = number("MASTER_PORT", var("MASTER_PORT"), 29500)?;
        let check = |ok: bool, name: &'static str, value: String, problem: String| {
            if ok {
                Ok(())
            } else {
                Err(DistError::Env {
                    name,
                    value,
                    problem,
                })
            }
        };
        check(
            world_size >= 1,
            "WORLD_SIZE",
            world,
            "must be at least 1".into(),
        )?;
        check(
            (1..=65535).contains(&master_port),
            "MASTER_PORT",
            master_port.to_string(),
            "must be a port in 1..=65535".into(),
        )?;
        check(
            nproc_per_node >= 1 && world_size.is_multiple_of(nproc_per_node),
            "NPROC_PER_NODE",
            nproc_per_node.to_string(),
            format!("must be at least 1 and divide WORLD_SIZE={world_size}"),
        )?;
        check(
            node_rank < world_size / nproc_per_node,
            "NODE_RANK",
            node_rank.to_string(),
            format!(
                "must be below the node count {}",
                world_size / nproc_per_node
            ),
        )?;
        check(
            local_rank < nproc_per_node,
            "LOCAL_RANK",
            local_rank.to_string(),
            format!("must be below NPROC_PER_NODE={nproc_per_node}"),
        )?;
        let master_addr = var("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into());
        check(
            !master_addr.trim().is_empty(),
            "MASTER_ADDR",
            master_addr.clone(),
            "must name rank 0's host".into(),
        )?;
        Ok(Some(Self {
            master_addr,
            master_port: master_port as u16,
            world_size,
            node_rank,
            nproc_per_node,
            local_rank,
        }))
    }

    /// Reads the process environment; None when WORLD_SIZE is unset.
    pub fn from_env() -> Result<Option<Self>, DistError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// This process's global rank.
    pub fn rank(&self) -> usize {
        self.node_rank * self.nproc_per_node + self.local_rank
    }
}
