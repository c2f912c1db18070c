//! `run_info.json`: what a run ran on (machine, device, ferrotune version, start time), written
//! by `ferrotune train` so a report made elsewhere can say so.

use std::path::Path;

use anyhow::Context;
use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::host::Host;

/// The file name, in the output directory.
pub const RUN_INFO_FILE: &str = "run_info.json";

/// Where and when a run ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Version of the ferrotune that trained.
    pub ferrotune_version: String,
    /// When the latest (re)start of training began (RFC 3339).
    pub started_at: String,
    /// The device computing, e.g. `cpu (16 threads)`.
    pub device: String,
    /// The machine.
    pub host: Host,
}

impl RunInfo {
    /// This process's facts, computing on `device`.
    pub fn current(device: &Device) -> Self {
        Self {
            ferrotune_version: env!("CARGO_PKG_VERSION").into(),
            started_at: jiff::Timestamp::now().to_string(),
            device: crate::device::describe(device),
            host: Host::current(),
        }
    }

    /// Writes it as pretty JSON to `path`.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// Reads `path`.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: not a run info file (ferrotune_version, started_at, device, host)",
                path.display()
            )
        })
    }
}
