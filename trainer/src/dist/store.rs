//! Rank 0's key-value store: every rank publishes what the others need (its ring address, the
//! NCCL unique id) and waits for theirs. Workers that start before rank 0's host resolves or
//! listens retry until the timeout.

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::error::DistError;
use super::wire;

const SET: &[u8] = b"set";
const GET: &[u8] = b"get";

#[derive(Default)]
struct Table {
    values: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
    changed: Condvar,
}

/// Serves the store on `listener` in background threads for the life of the process.
pub fn serve(listener: TcpListener, timeout: Duration) {
    let table = Arc::new(Table::default());
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let table = table.clone();
            thread::spawn(move || {
                let _ = handle(stream, &table, timeout);
            });
        }
    });
}

fn handle(mut stream: TcpStream, table: &Table, timeout: Duration) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    loop {
        let op = wire::recv(&mut stream)?;
        let key = wire::recv(&mut stream)?;
        if op == SET {
            let value = wire::recv(&mut stream)?;
            table.values.lock().unwrap().insert(key, value);
            table.changed.notify_all();
            wire::send(&mut stream, b"")?;
        } else if op == GET {
            let deadline = Instant::now() + timeout;
            let mut values = table.values.lock().unwrap();
            let value = loop {
                if let Some(v) = values.get(&key) {
                    break Some(v.clone());
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break None;
                }
                values = table.changed.wait_timeout(values, left).unwrap().0;
            };
            drop(values);
            // An empty reply after the deadline means "not there"; values are never empty.
            wire::send(&mut stream, value.as_deref().unwrap_or(b""))?;
        } else {
            return Ok(());
        }
    }
}

/// Joins the store of the world `env` describes: rank 0 serves it on MASTER_PORT first, then
/// every rank connects to MASTER_ADDR:MASTER_PORT.
pub fn rendezvous(env: &super::WorldEnv, timeout: Duration) -> Result<StoreClient, DistError> {
    let rank = env.rank();
    if rank == 0 {
        let listener =
            TcpListener::bind(("0.0.0.0", env.master_port)).map_err(|e| DistError::Peer {
                rank,
                peer: format!("port {} (MASTER_PORT)", env.master_port),
                what: "listening for the store".into(),
                source: e,
            })?;
        serve(listener, timeout);
    }
    StoreClient::connect(&env.master_addr, env.master_port, rank, timeout)
}

/// One rank's connection to the store.
pub struct StoreClient {
    stream: TcpStream,
    rank: usize,
    peer: String,
    timeout: Duration,
}

impl StoreClient {
    /// Connects to `host:port`, retrying (name resolution included) until `timeout`.
    pub fn connect(
        host: &str,
        port: u16,
        rank: usize,
        timeout: Duration,
    ) -> Result<Self, DistError> {
        let peer = format!("the store of rank 0 at {host}:{port}");
        let deadline = Instant::now() + timeout;
        loop {
            let attempt = (host, port).to_socket_addrs().and_then(|mut addrs| {
                let addr = addrs.next().ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
                })?;
                TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            });
            let last = match attempt {
                Ok(stream) => {
                    stream.set_nodelay(true).ok();
                    return Ok(Self {
                        stream,
                        rank,
                        peer,
                        timeout,
                    });
                }
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(DistError::Timeout {
                    rank,
                    peer,
                    what: format!("connecting; last error: {last}"),
                    timeout,
                });
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// This client's address as rank 0 sees it: the interface that reaches rank 0.
    pub fn local_ip(&self) -> std::net::IpAddr {
        self.stream
            .local_addr()
            .map(|a| a.ip())
            .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into())
    }

    fn io(&self, what: &str, e: std::io::Error) -> DistError {
        DistError::Peer {
            rank: self.rank,
            peer: self.peer.clone(),
            what: what.into(),
            source: e,
        }
    }

    /// Stores `value` (not empty) under `key`.
    pub fn set(&mut self, key: &str, value: &[u8]) -> Result<(), DistError> {
        assert!(!value.is_empty(), "store values are never empty");
        let stream = &mut self.stream;
        let sent = wire::send(stream, SET)
            .and_then(|()| wire::send(stream, key.as_bytes()))
            .and_then(|()| wire::send(stream, value))
            .and_then(|()| wire::recv(stream));
        sent.map(drop)
            .map_err(|e| self.io(&format!("set {key}"), e))
    }

    /// Waits for `key` until the timeout; `who` names the rank expected to set it.
    pub fn get(&mut self, key: &str, who: &str) -> Result<Vec<u8>, DistError> {
        let stream = &mut self.stream;
        let value = wire::send(stream, GET)
            .and_then(|()| wire::send(stream, key.as_bytes()))
            .and_then(|()| wire::recv(stream))
            .map_err(|e| self.io(&format!("get {key}"), e))?;
        if value.is_empty() {
            return Err(DistError::Timeout {
                rank: self.rank,
                peer: who.into(),
                what: format!("its `{key}` at the store"),
                timeout: self.timeout,
            });
        }
        Ok(value)
    }
}
