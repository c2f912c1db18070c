//! TensorBoard event files (`events.out.tfevents.<seconds>.<host>.<pid>`): scalars that
//! `tensorboard --logdir` and `wandb sync --sync-tensorboard` read.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::event;
use super::tfrecord::append_record;

/// An event file being written; every call appends and flushes whole records, so a reader
/// never sees a partial one from a finished call.
#[derive(Debug)]
pub struct EventWriter {
    file: File,
    path: PathBuf,
}

/// An event file that cannot be created or written.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot write TensorBoard events: {source}", path.display())]
pub struct EventsError {
    /// The event file.
    pub path: PathBuf,
    /// The underlying error.
    pub source: std::io::Error,
}

impl EventWriter {
    /// Creates a new event file in `dir` named for the current time, this host and process,
    /// and writes the format-version event.
    pub fn create(dir: &Path) -> Result<Self, EventsError> {
        let now = wall_time();
        let name = format!(
            "events.out.tfevents.{}.{}.{}",
            now as u64,
            super::host::hostname(),
            std::process::id()
        );
        let path = dir.join(name);
        let file = File::create_new(&path).map_err(|source| EventsError {
            path: path.clone(),
            source,
        })?;
        let mut writer = Self { file, path };
        writer.write(&event::file_version(now))?;
        Ok(writer)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records `(tag, value)` scalars at `step`, as one event.
    pub fn scalars(&mut self, step: u64, values: &[(&str, f64)]) -> Result<(), EventsError> {
        self.write(&event::scalars(wall_time(), step as i64, values))
    }

    /// Marks a (re)start at `step`: TensorBoard drops what earlier files of the directory hold
    /// for `step` and later.
    pub fn session_start(&mut self, step: u64) -> Result<(), EventsError> {
        self.write(&event::session_start(wall_time(), step as i64))
    }

    fn write(&mut self, payload: &[u8]) -> Result<(), EventsError> {
        let mut record = Vec::with_capacity(payload.len() + 16);
        append_record(&mut record, payload);
        self.file
            .write_all(&record)
            .and_then(|()| self.file.flush())
            .map_err(|source| EventsError {
                path: self.path.clone(),
                source,
            })
    }
}

/// Seconds since the Unix epoch.
fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
