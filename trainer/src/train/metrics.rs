//! `metrics.jsonl` (one line per optimizer step) and `training_duration.json`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;

/// One optimizer step as recorded in `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Optimizer step (1-based).
    pub step: u64,
    /// Fractional epoch reached.
    pub epoch: f64,
    /// Mean loss over the step's target tokens (all ranks); NaN or infinite ones are written as
    /// JSON `null` and read back as NaN.
    #[serde(deserialize_with = "nan_if_null")]
    pub loss: f64,
    /// Learning rate used for this step.
    pub learning_rate: f64,
    /// Global gradient norm before clipping (`null` when not finite, as `loss`).
    #[serde(deserialize_with = "nan_if_null")]
    pub grad_norm: f64,
    /// Tokens processed in the step (all ranks, padding excluded).
    pub tokens: u64,
    /// Tokens per second over the step.
    pub tokens_per_second: f64,
    /// Seconds since training started (carried across resumes).
    pub elapsed_seconds: f64,
    /// Peak resident memory of the process so far, when known (absent in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
    /// The update was skipped because the loss or gradients were not finite.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
}

/// Reads a number that JSON wrote as `null` because it was not finite.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Appends step records, one JSON object per line, flushed as they come.
#[derive(Debug)]
pub struct MetricsLog {
    file: File,
    path: PathBuf,
}

impl MetricsLog {
    /// Opens `path` for appending, first dropping any records after `resume_step` (a resumed run
    /// rewrites those steps); the file is replaced atomically, so a crash here loses nothing.
    pub fn open(path: &Path, resume_step: u64) -> anyhow::Result<Self> {
        let kept = read(path)?
            .into_iter()
            .filter(|r| r.step <= resume_step)
            .collect::<Vec<_>>();
        let mut text = String::new();
        for r in &kept {
            text.push_str(&serde_json::to_string(r)?);
            text.push('\n');
        }
        write_atomic(path, |tmp| Ok(fs::write(tmp, text)?))?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Appends one record.
    pub fn append(&mut self, record: &StepRecord) -> anyhow::Result<()> {
        let mut line = serde_json::to_string(record)?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.file.flush()?;
        Ok(())
    }
}

/// Reads `metrics.jsonl` (empty when absent). A last line without its newline is a record cut off
/// by a crash mid-write and is left out when it does not parse.
pub fn read(path: &Path) -> anyhow::Result<Vec<StepRecord>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let lines: Vec<&str> = text.lines().collect();
    let torn_tail = !text.ends_with('\n');
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(record) => out.push(record),
            Err(_) if torn_tail && i + 1 == lines.len() => break,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("{}:{}: not a step record", path.display(), i + 1));
            }
        }
    }
    Ok(out)
}

/// Writes `training_duration.json` as the course does.
pub fn write_duration(path: &Path, seconds: f64) -> anyhow::Result<()> {
    let v = serde_json::json!({ "duration_seconds": seconds, "duration_minutes": seconds / 60.0 });
    fs::write(path, serde_json::to_vec_pretty(&v)?)
        .with_context(|| format!("writing {}", path.display()))
}
