//! The launcher: with NPROC_PER_NODE > 1 (and no LOCAL_RANK yet), `ferrotune train` starts one
//! process per local rank with the same arguments, as torchrun does. It forwards SIGINT and
//! SIGTERM to them, passes their output through (lines of ranks other than 0 prefixed with
//! `[rank N]`), and when one fails stops the rest and exits non-zero naming that rank and its
//! error.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::env::WorldEnv;
use crate::train::Finish;

/// How long the other ranks get to exit after SIGTERM before they are killed.
const GRACE: Duration = Duration::from_secs(20);
/// How long after the first failure others are collected before the cause is chosen.
const SETTLE: Duration = Duration::from_secs(2);

/// Whether this process should launch the local ranks rather than train.
pub fn should_launch(env: &WorldEnv) -> bool {
    env.nproc_per_node > 1 && std::env::var_os("LOCAL_RANK").is_none()
}

struct Rank {
    rank: usize,
    child: Child,
    status: Option<ExitStatus>,
    last_error: Arc<Mutex<Option<String>>>,
}

/// Starts this node's ranks of `env` running this executable with this process's arguments and
/// waits for them.
pub fn run(env: &WorldEnv) -> anyhow::Result<Finish> {
    let exe = std::env::current_exe().context("finding the ferrotune executable")?;
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    tracing::info!(
        "starting {} ranks on node {} of {} (world size {})",
        env.nproc_per_node,
        env.node_rank,
        env.world_size / env.nproc_per_node,
        env.world_size
    );
    let mut ranks = Vec::with_capacity(env.nproc_per_node);
    for local in 0..env.nproc_per_node {
        let rank = env.node_rank * env.nproc_per_node + local;
        // Their own process group: a terminal's Ctrl-C reaches the launcher alone, which
        // forwards it once (a second signal would make a rank exit without its checkpoint).
        let mut child = Command::new(&exe)
            .process_group(0)
            .args(&args)
            .env("WORLD_SIZE", env.world_size.to_string())
            .env("NPROC_PER_NODE", env.nproc_per_node.to_string())
            .env("NODE_RANK", env.node_rank.to_string())
            .env("MASTER_ADDR", &env.master_addr)
            .env("MASTER_PORT", env.master_port.to_string())
            .env("LOCAL_RANK", local.to_string())
            .env("RANK", rank.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting rank {rank}"))?;
        let last_error = Arc::new(Mutex::new(None));
        let prefix = if rank == 0 {
            String::new()
        } else {
            format!("[rank {rank}] ")
        };
        let out = child.stdout.take().expect("piped");
        let err = child.stderr.take().expect("piped");
        forward(out, std::io::stdout, prefix.clone(), None);
        forward(err, std::io::stderr, prefix, Some(Arc::clone(&last_error)));
        ranks.push(Rank {
            rank,
            child,
            status: None,
            last_error,
        });
    }
    supervise(&mut ranks, &stop)
}

/// Copies a child's output line by line, remembering its last `error:` line.
fn forward<R: Read + Send + 'static, W: Write + 'static>(
    from: R,
    to: fn() -> W,
    prefix: String,
    last_error: Option<Arc<Mutex<Option<String>>>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            if let (Some(slot), Some(message)) = (&last_error, line.strip_prefix("error: ")) {
                *slot.lock().unwrap() = Some(message.to_string());
            }
            let _ = writeln!(to(), "{prefix}{line}");
        }
    });
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on a child we spawned and have not reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

fn supervise(ranks: &mut [Rank], stop: &AtomicBool) -> anyhow::Result<Finish> {
    let mut forwarded = false;
    let mut first_failure: Option<Instant> = None;
    let mut killed = false;
    loop {
        for r in ranks.iter_mut().filter(|r| r.status.is_none()) {
            if let Some(status) = r.child.try_wait()? {
                r.status = Some(status);
                if !status.success() && status.code() != Some(130) && first_failure.is_none() {
                    first_failure = Some(Instant::now());
                }
            }
        }
        let running: Vec<&Rank> = ranks.iter().filter(|r| r.status.is_none()).collect();
        if running.is_empty() {
            break;
        }
        if stop.load(Ordering::Relaxed) && !forwarded {
            running.iter().for_each(|r| signal(&r.child, libc::SIGTERM));
            forwarded = true;
        }
        if let Some(at) = first_failure {
            if !forwarded && at.elapsed() >= SETTLE {
                running.iter().for_each(|r| signal(&r.child, libc::SIGTERM));
                forwarded = true;
            }
            if !killed && at.elapsed() >= SETTLE + GRACE {
                running.iter().for_each(|r| signal(&r.child, libc::SIGKILL));
                killed = true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Let the output threads drain.
    std::thread::sleep(Duration::from_millis(100));
    let failed: Vec<&Rank> = ranks
        .iter()
        .filter(|r| {
            r.status
                .is_some_and(|s| !s.success() && s.code() != Some(130))
        })
        .collect();
    if let Some(cause) = root_cause(&failed) {
        let others: Vec<String> = failed
            .iter()
            .filter(|r| r.rank != cause.rank)
            .map(|r| r.rank.to_string())
            .collect();
        let error = cause.last_error.lock().unwrap().clone();
        anyhow::bail!(
            "rank {} failed ({}){}{}",
            cause.rank,
            describe(cause.status.expect("exited")),
            error.map_or(String::new(), |e| format!(": {e}")),
            if others.is_empty() {
                String::new()
            } else {
                format!("; ranks {} stopped after it", others.join(", "))
            }
        );
    }
    if ranks.iter().all(|r| r.status.is_some_and(|s| s.success())) {
        Ok(Finish::Completed)
    } else {
        Ok(Finish::Interrupted)
    }
}

/// The failure that most likely caused the others: a rank killed by a signal, else one whose
/// error is not about a peer's lost connection, else the lowest rank.
fn root_cause<'a>(failed: &[&'a Rank]) -> Option<&'a Rank> {
    let peer_error = |r: &Rank| {
        r.last_error
            .lock()
            .unwrap()
            .as_deref()
            .is_some_and(|e| e.contains("connection to rank") || e.contains("no answer from"))
    };
    failed
        .iter()
        .find(|r| r.status.and_then(|s| s.signal()).is_some())
        .or_else(|| failed.iter().find(|r| !peer_error(r)))
        .or(failed.first())
        .copied()
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(libc::SIGKILL)) => "killed by SIGKILL".into(),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}
