//! The TCP ring's collectives among threads on loopback, against sums computed in f64.

use std::net::TcpListener;
use std::time::Duration;

use ferrotune::dist::{Collective, DistError, Ring, WorldEnv, shard_range};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `body` on every rank of a loopback world of `world`, returning each rank's result.
fn in_world<T: Send>(
    world: usize,
    body: impl Fn(&mut Ring) -> Result<T, DistError> + Sync,
) -> Vec<T> {
    let port = free_port();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..world)
            .map(|rank| {
                let body = &body;
                s.spawn(move || {
                    let env = WorldEnv::local(world, rank, port);
                    let mut ring = Ring::connect(&env, Duration::from_secs(20))?;
                    body(&mut ring)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    })
}

fn inputs(world: usize, len: usize) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(world as u64 * 1000 + len as u64);
    (0..world)
        .map(|_| (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect()
}

#[test]
fn all_reduce_reduce_scatter_all_gather_and_broadcast_match_the_reference() {
    for world in [1, 2, 4] {
        // Lengths below, equal to and not divisible by the world size.
        for len in [1, 3, world, 1000, 4099] {
            let data = inputs(world, len);
            let sum: Vec<f64> = (0..len)
                .map(|i| data.iter().map(|d| d[i] as f64).sum())
                .collect();
            let results = in_world(world, |ring| {
                let mine = data[ring.rank()].clone();
                let mut reduced = mine.clone();
                ring.all_reduce_sum(&mut reduced)?;
                let shard = ring.reduce_scatter_sum(&mine)?;
                let gathered = ring.all_gather(&shard, len)?;
                let mut from_last = mine.clone();
                ring.broadcast(&mut from_last, world - 1)?;
                ring.barrier()?;
                Ok((ring.rank(), reduced, shard, gathered, from_last))
            });
            for (rank, reduced, shard, gathered, from_last) in &results {
                for (i, (got, want)) in reduced.iter().zip(&sum).enumerate() {
                    assert!(
                        (*got as f64 - want).abs() <= 1e-5,
                        "world {world} len {len} rank {rank} index {i}: {got} vs {want}"
                    );
                }
                assert_eq!(reduced, &results[0].1, "every rank holds the same sum");
                assert_eq!(shard[..], reduced[shard_range(len, *rank, world)]);
                assert_eq!(gathered, reduced, "gathered shards are the all-reduce");
                assert_eq!(from_last, &data[world - 1]);
            }
        }
    }
}

#[test]
fn a_missing_rank_is_named_after_the_timeout() {
    let port = free_port();
    let rank0 = std::thread::spawn(move || {
        Ring::connect(&WorldEnv::local(2, 0, port), Duration::from_millis(500)).err()
    });
    let err = rank0
        .join()
        .unwrap()
        .expect("rank 1 never came")
        .to_string();
    assert!(err.contains("rank 0") && err.contains("rank 1"), "{err}");
}

#[test]
fn a_rank_that_dies_mid_collective_is_named() {
    let port = free_port();
    let results: Vec<Option<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|rank| {
                s.spawn(move || {
                    let env = WorldEnv::local(2, rank, port);
                    let mut ring = Ring::connect(&env, Duration::from_secs(5)).unwrap();
                    if rank == 1 {
                        return None; // dies: its sockets close
                    }
                    let mut buf = vec![1.0; 1 << 16];
                    ring.all_reduce_sum(&mut buf).err().map(|e| e.to_string())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let err = results[0].as_deref().expect("rank 0 sees the failure");
    assert!(
        err.starts_with("rank 0:") && err.contains("rank 1"),
        "{err}"
    );
}

#[test]
fn the_environment_is_read_and_bad_values_are_named() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    };
    assert_eq!(WorldEnv::from_vars(vars(&[])).unwrap(), None);
    let env = WorldEnv::from_vars(vars(&[
        ("WORLD_SIZE", "4"),
        ("NPROC_PER_NODE", "2"),
        ("NODE_RANK", "1"),
        ("LOCAL_RANK", "1"),
        ("MASTER_ADDR", "job-0.job"),
        ("MASTER_PORT", "29400"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(env.rank(), 3);
    assert_eq!(
        (env.master_addr.as_str(), env.master_port),
        ("job-0.job", 29400)
    );
    let err = WorldEnv::from_vars(vars(&[("WORLD_SIZE", "4"), ("NPROC_PER_NODE", "3")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("NPROC_PER_NODE") && err.contains("divide WORLD_SIZE=4"),
        "{err}"
    );
    let err = WorldEnv::from_vars(vars(&[("WORLD_SIZE", "two")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("WORLD_SIZE=\"two\"") && err.contains("whole number"),
        "{err}"
    );
}

/// NCCL at world size 1 on the GPU (NCCL refuses two ranks on one GPU): every collective returns
/// this rank's own values, exactly. Skipped without a GPU.
#[cfg(feature = "cuda")]
#[test]
fn nccl_collectives_on_one_gpu() {
    let Ok(device) = candle_core::Device::new_cuda(0) else {
        eprintln!("skipped: no CUDA device on this machine");
        return;
    };
    let env = WorldEnv::local(1, 0, free_port());
    let mut nccl =
        ferrotune::dist::nccl::Nccl::connect(&env, &device, Duration::from_secs(20)).unwrap();
    for len in [1, 3, 1000, 4099] {
        let mine = inputs(1, len).remove(0);
        let mut reduced = mine.clone();
        nccl.all_reduce_sum(&mut reduced).unwrap();
        assert_eq!(reduced, mine, "all-reduce of one rank");
        assert_eq!(
            nccl.reduce_scatter_sum(&mine).unwrap(),
            mine,
            "reduce-scatter"
        );
        assert_eq!(nccl.all_gather(&mine, len).unwrap(), mine, "all-gather");
        let mut b = mine.clone();
        nccl.broadcast(&mut b, 0).unwrap();
        assert_eq!(b, mine, "broadcast");
        assert_eq!(nccl.sum_f64(&[1.25, -3.5]).unwrap(), vec![1.25, -3.5]);
    }
}
