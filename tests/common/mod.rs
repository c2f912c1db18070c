//! What the end-to-end tests share: the repository root and the test Python's location.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

/// The Python that has the test requirements: env FERROTUNE_PYTHON, else the repository's
/// `.venv` (not checked for existence: callers say what they need from it).
pub fn test_python() -> PathBuf {
    std::env::var_os("FERROTUNE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"))
}
