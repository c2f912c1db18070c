//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

pub mod tensors;

use std::path::PathBuf;

/// Directory of the committed test fixtures.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The reference material beside the repository (`../shared`).
pub fn shared() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

/// The real SmolLM2-135M-Instruct Q4_1 GGUF, as `scripts/fetch-model.sh` places it
/// (or FERROTUNE_SMOLLM2). Panics with the fix when it is missing.
pub fn smollm2_gguf() -> PathBuf {
    let path = std::env::var_os("FERROTUNE_SMOLLM2")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("FERROTUNE_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    std::env::var_os("XDG_CACHE_HOME")
                        .map(PathBuf::from)
                        .unwrap_or_else(|| {
                            PathBuf::from(std::env::var("HOME").expect("HOME is set"))
                                .join(".cache")
                        })
                        .join("ferrotune")
                });
            cache.join("SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-model.sh first",
        path.display()
    );
    path
}
