//! The CPU backend: ranks form a ring of TCP connections (each sends to the next and receives
//! from the previous) and run the bandwidth-optimal ring algorithms, as gloo does.
//! Reduce-scatter and all-gather take `world - 1` steps each, moving `len / world` values per
//! step; all-reduce is the two in sequence.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use super::collective::{Collective, shard_range};
use super::env::WorldEnv;
use super::error::DistError;
use super::store::{self, StoreClient};
use super::wire;

/// A rank's place in the TCP ring.
pub struct Ring {
    rank: usize,
    world: usize,
    timeout: Duration,
    /// To rank + 1 (None in a world of one).
    next: Option<TcpStream>,
    /// From rank - 1.
    prev: Option<TcpStream>,
    /// Kept so the store outlives the rendezvous (rank 0 serves it from this process).
    _store: Option<StoreClient>,
}

impl Ring {
    /// Joins the world: rank 0 serves the store on MASTER_PORT; every rank listens on a free
    /// port, publishes it, and connects to the next rank. Waits at most `timeout` for each peer.
    pub fn connect(env: &WorldEnv, timeout: Duration) -> Result<Self, DistError> {
        let (rank, world) = (env.rank(), env.world_size);
        if world == 1 {
            return Ok(Self {
                rank,
                world,
                timeout,
                next: None,
                prev: None,
                _store: None,
            });
        }
        let mut client = store::rendezvous(env, timeout)?;
        let listener = TcpListener::bind((client.local_ip(), 0)).map_err(|e| DistError::Peer {
            rank,
            peer: "itself".into(),
            what: "listening for the previous rank".into(),
            source: e,
        })?;
        let mine = listener
            .local_addr()
            .expect("a bound listener has an address");
        client.set(&format!("ring/{rank}"), mine.to_string().as_bytes())?;
        let next_rank = (rank + 1) % world;
        let prev_rank = (rank + world - 1) % world;
        let addr = client.get(&format!("ring/{next_rank}"), &format!("rank {next_rank}"))?;
        let addr: SocketAddr =
            String::from_utf8_lossy(&addr)
                .parse()
                .map_err(|_| DistError::Mismatch {
                    rank,
                    message: format!("rank {next_rank} published a bad address"),
                })?;
        let fail = |peer: usize, what: &str, e: io::Error| classify(rank, peer, what, timeout, e);
        let mut next = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| fail(next_rank, "connecting the ring", e))?;
        wire::send(&mut next, &(rank as u64).to_le_bytes())
            .map_err(|e| fail(next_rank, "the ring handshake", e))?;
        let mut prev = accept(&listener, timeout)
            .map_err(|e| fail(prev_rank, "accepting its ring connection", e))?;
        let hello = wire::recv(&mut prev).map_err(|e| fail(prev_rank, "the ring handshake", e))?;
        if hello != (prev_rank as u64).to_le_bytes() {
            return Err(DistError::Mismatch {
                rank,
                message: format!("expected rank {prev_rank} to connect, got {hello:?}"),
            });
        }
        for s in [&next, &prev] {
            s.set_nodelay(true).ok();
            s.set_read_timeout(Some(timeout)).ok();
            s.set_write_timeout(Some(timeout)).ok();
        }
        Ok(Self {
            rank,
            world,
            timeout,
            next: Some(next),
            prev: Some(prev),
            _store: Some(client),
        })
    }

    fn error(&self, peer: usize, what: &str, e: io::Error) -> DistError {
        classify(self.rank, peer, what, self.timeout, e)
    }

    /// Sends `out` to the next rank while receiving `expect` values from the previous one (both
    /// at once, so large frames cannot deadlock on full socket buffers).
    fn exchange(&mut self, out: &[f32], expect: usize, what: &str) -> Result<Vec<f32>, DistError> {
        let (next, prev) = (self.next.as_mut(), self.prev.as_mut());
        let (next, prev) = (next.expect("a ring"), prev.expect("a ring"));
        let bytes = wire::f32_bytes(out);
        let (sent, got) = thread::scope(|s| {
            let sender = s.spawn(|| wire::send(next, &bytes));
            let got = wire::recv(prev);
            (sender.join().expect("the sending thread"), got)
        });
        let (next_rank, prev_rank) = (
            (self.rank + 1) % self.world,
            (self.rank + self.world - 1) % self.world,
        );
        sent.map_err(|e| self.error(next_rank, what, e))?;
        let got = got.map_err(|e| self.error(prev_rank, what, e))?;
        wire::bytes_f32(&got)
            .filter(|g| g.len() == expect)
            .ok_or_else(|| DistError::Mismatch {
                rank: self.rank,
                message: format!(
                    "rank {prev_rank} sent {} bytes during {what}, expected {expect} values",
                    got.len()
                ),
            })
    }

    /// Ring reduce-scatter in place: afterwards chunk `rank` of `buf` holds the full sum.
    fn reduce_scatter_in_place(&mut self, buf: &mut [f32]) -> Result<(), DistError> {
        let (w, r, n) = (self.world, self.rank, buf.len());
        for step in 0..w - 1 {
            // Pass on the chunk accumulated so far and add the arriving one into ours; the
            // last step completes chunk `rank`.
            let send = (r + w - step - 1) % w;
            let recv = (r + 2 * w - step - 2) % w;
            let range = shard_range(n, recv, w);
            let got =
                self.exchange(&buf[shard_range(n, send, w)], range.len(), "reduce-scatter")?;
            for (b, g) in buf[range].iter_mut().zip(got) {
                *b += g;
            }
        }
        Ok(())
    }

    /// Ring all-gather in place: chunk `rank` of `buf` is this rank's; afterwards all are filled.
    fn all_gather_in_place(&mut self, buf: &mut [f32]) -> Result<(), DistError> {
        let (w, r, n) = (self.world, self.rank, buf.len());
        for step in 0..w - 1 {
            let send = (r + w - step) % w;
            let recv = (r + w - step - 1) % w;
            let range = shard_range(n, recv, w);
            let got = self.exchange(&buf[shard_range(n, send, w)], range.len(), "all-gather")?;
            buf[range].copy_from_slice(&got);
        }
        Ok(())
    }

    fn length_mismatch(&self, n: usize) -> DistError {
        DistError::Mismatch {
            rank: self.rank,
            message: format!("a neighbour's buffer length differs from this rank's {n}"),
        }
    }
}

/// A socket error as a DistError: a timeout when the peer was silent, else a failed peer.
fn classify(rank: usize, peer: usize, what: &str, timeout: Duration, e: io::Error) -> DistError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => DistError::Timeout {
            rank,
            peer: format!("rank {peer}"),
            what: what.into(),
            timeout,
        },
        _ => DistError::Peer {
            rank,
            peer: format!("rank {peer}"),
            what: what.into(),
            source: e,
        },
    }
}

fn accept(listener: &TcpListener, timeout: Duration) -> io::Result<TcpStream> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                return Ok(stream);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

impl Collective for Ring {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.world
    }

    fn all_reduce_sum(&mut self, buf: &mut [f32]) -> Result<(), DistError> {
        if self.world == 1 {
            return Ok(());
        }
        self.reduce_scatter_in_place(buf)?;
        self.all_gather_in_place(buf)
    }

    fn reduce_scatter_sum(&mut self, buf: &[f32]) -> Result<Vec<f32>, DistError> {
        let (w, r, n) = (self.world, self.rank, buf.len());
        if w == 1 {
            return Ok(buf.to_vec());
        }
        let mut work = buf.to_vec();
        self.reduce_scatter_in_place(&mut work)?;
        Ok(work[shard_range(n, r, w)].to_vec())
    }

    fn all_gather(&mut self, shard: &[f32], total: usize) -> Result<Vec<f32>, DistError> {
        let (w, r) = (self.world, self.rank);
        let mine = shard_range(total, r, w);
        if shard.len() != mine.len() {
            return Err(DistError::Mismatch {
                rank: r,
                message: format!(
                    "all-gather of {total} values: this rank's shard holds {}, expected {}",
                    shard.len(),
                    mine.len()
                ),
            });
        }
        let mut buf = vec![0.0; total];
        buf[mine].copy_from_slice(shard);
        if w > 1 {
            self.all_gather_in_place(&mut buf)?;
        }
        Ok(buf)
    }

    fn broadcast(&mut self, buf: &mut [f32], root: usize) -> Result<(), DistError> {
        let (w, r) = (self.world, self.rank);
        if w == 1 {
            return Ok(());
        }
        // Pass the buffer around the ring from the root; the last rank before it stops.
        let prev_rank = (r + w - 1) % w;
        let next_rank = (r + 1) % w;
        if r != root {
            let got = wire::recv(self.prev.as_mut().expect("a ring"))
                .map_err(|e| self.error(prev_rank, "broadcast", e))?;
            let got = wire::bytes_f32(&got).filter(|g| g.len() == buf.len());
            buf.copy_from_slice(&got.ok_or_else(|| self.length_mismatch(buf.len()))?);
        }
        if next_rank != root {
            wire::send(self.next.as_mut().expect("a ring"), &wire::f32_bytes(buf))
                .map_err(|e| self.error(next_rank, "broadcast", e))?;
        }
        Ok(())
    }
}
