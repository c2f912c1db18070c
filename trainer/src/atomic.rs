//! Atomic file writes: readers see the old file or the complete new one, never a torn one, even
//! when the process is killed or the disk fills mid-write.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Writes `path` through `write` into a temporary file beside it, flushes that to disk, renames it into
/// place and syncs the directory, so readers see the old file or the complete new one.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp: PathBuf = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = write(&tmp)
        .and_then(|()| {
            let file = File::options().append(true).open(&tmp)?;
            file.sync_all()?;
            Ok(())
        })
        .and_then(|()| Ok(std::fs::rename(&tmp, path)?));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("writing {}", path.display())));
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_writes_leave_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        let err = write_atomic(&path, |tmp| {
            std::fs::write(tmp, "partial")?;
            anyhow::bail!("disk full")
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("x.json"), "{err:#}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
