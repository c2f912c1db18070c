//! Errors of rendezvous and collectives, each naming the rank or variable at fault.

use std::time::Duration;

/// What went wrong between ranks.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// A rendezvous variable is missing or malformed.
    #[error("environment variable {name}={value:?}: {problem}")]
    Env {
        /// The variable.
        name: &'static str,
        /// What it holds ("" when unset).
        value: String,
        /// What is allowed.
        problem: String,
    },
    /// A peer did not answer in time.
    #[error("rank {rank}: no answer from {peer} within {}s ({what})", .timeout.as_secs())]
    Timeout {
        /// This rank.
        rank: usize,
        /// Who was waited for, e.g. "rank 2" or "the store at host:port".
        peer: String,
        /// What was waited for.
        what: String,
        /// The configured limit.
        timeout: Duration,
    },
    /// A peer's connection failed or closed mid-operation: the peer most likely died.
    #[error("rank {rank}: connection to {peer} failed during {what}: {source}")]
    Peer {
        /// This rank.
        rank: usize,
        /// The peer, e.g. "rank 1".
        peer: String,
        /// The operation.
        what: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// Ranks disagree (a buffer length, a handshake).
    #[error("rank {rank}: {message}")]
    Mismatch {
        /// This rank.
        rank: usize,
        /// What disagreed.
        message: String,
    },
}
