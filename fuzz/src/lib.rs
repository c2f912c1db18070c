//! Helpers shared by the fuzz targets: splitting one input into the files a loader reads, and a
//! scratch directory (one per fuzzing process) to write them into for loaders that take paths.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Splits an input at its first NUL byte: the text file before it (JSON or YAML never holds a raw
/// NUL) and the binary file after it. Without a NUL the whole input is the text part.
pub fn split_at_nul(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// This process's scratch directory under the system temp dir, created once.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ferrotune-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating the fuzz scratch directory");
        dir
    })
}

/// A fresh, empty directory `name` inside [`scratch`].
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = scratch().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a fuzz scratch subdirectory");
    dir
}

/// Writes `bytes` to `path`; the harness, not the code under test, fails if it cannot.
pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("writing a fuzz input file");
}
