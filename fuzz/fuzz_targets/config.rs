//! The trainer config: YAML text (lossily UTF-8) parsed, `--set` overrides applied, validated.
//! Input: the YAML document, then optionally a NUL and one `key=value` override per line.
#![no_main]

use std::path::Path;

use ferrotune_config::Config;
use ferrotune_fuzz::split_at_nul;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (yaml, overrides) = split_at_nul(data);
    let yaml = String::from_utf8_lossy(yaml);
    let overrides: Vec<String> = String::from_utf8_lossy(overrides)
        .lines()
        .map(str::to_owned)
        .collect();
    // Ok or Err are both fine; a valid config must also serialise back (`to_yaml` expects it).
    if let Ok(config) = Config::from_yaml(&yaml, Path::new("fuzz.yaml"), &overrides) {
        let _ = config.to_yaml();
    }
});
