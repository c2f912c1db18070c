//! Facts about the machine a run is on, read from Linux's `/proc` (absent elsewhere): its name,
//! CPU, memory, and this process's peak resident memory.

use std::fs;

use serde::{Deserialize, Serialize};

/// The machine, as recorded in `run_info.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// Host name (a pod's name in Kubernetes).
    pub hostname: String,
    /// CPU model name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_model: Option<String>,
    /// Logical CPUs available to this process.
    pub cpu_cores: usize,
    /// Physical memory, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
}

impl Host {
    /// Reads the facts about this machine.
    pub fn current() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Self {
            hostname: hostname(),
            cpu_model: cpu_model(&cpuinfo),
            cpu_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes: kib_field(&meminfo, "MemTotal:"),
        }
    }
}

/// The host name, or `localhost` when it cannot be read.
pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".into())
}

/// The most resident memory this process has used so far (`VmHWM`), when known.
pub fn peak_rss_bytes() -> Option<u64> {
    kib_field(&fs::read_to_string("/proc/self/status").ok()?, "VmHWM:")
}

/// The first `model name` (x86) or `Model`/`Hardware` (ARM) line of `/proc/cpuinfo`.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    ["model name", "Model", "Hardware"].iter().find_map(|key| {
        cpuinfo.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            (name.trim() == *key && !value.trim().is_empty()).then(|| value.trim().to_owned())
        })
    })
}

/// A `Key:   123 kB` line of a `/proc` status file, in bytes.
fn kib_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line[key.len()..]
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_fields() {
        let status = "Name:\tferrotune\nVmPeak:\t  9000 kB\nVmHWM:\t    2048 kB\n";
        assert_eq!(kib_field(status, "VmHWM:"), Some(2048 * 1024));
        assert_eq!(kib_field(status, "VmRSS:"), None);
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 85\n\
                       model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz\n";
        assert_eq!(
            cpu_model(cpuinfo).as_deref(),
            Some("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz")
        );
        assert_eq!(cpu_model("processor\t: 0\n"), None);
    }

    #[test]
    fn this_process_has_a_peak() {
        if cfg!(target_os = "linux") {
            let buffer = std::hint::black_box(vec![1u8; 8 << 20]);
            let peak = peak_rss_bytes().expect("VmHWM on Linux");
            assert!(peak >= buffer.len() as u64, "peak {peak}");
        }
    }
}
