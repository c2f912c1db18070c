//! Checkpoints: trainable parameters, optimizer moments and the loop's position, written
//! atomically (a temporary directory, fsynced, then renamed) so a crash never leaves a
//! half-written checkpoint; the newest readable one is resumed, falling back past broken ones.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use candle_core::{Device, Tensor};
use ferrotune_config::Mode;
use serde::{Deserialize, Serialize};

use super::optim::AdamWState;
use super::params::FlatParams;

const PARAMS_FILE: &str = "params.safetensors";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const STATE_FILE: &str = "state.json";
/// The checkpoint layout this build writes and reads.
pub const FORMAT: u32 = 1;

/// Where the training loop stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Checkpoint format version.
    pub format: u32,
    /// Optimizer steps completed.
    pub step: u64,
    /// Optimizer steps the run will take.
    pub total_steps: u64,
    /// What is trained.
    pub mode: Mode,
    /// The run's seed.
    pub seed: u64,
    /// Processes that wrote it.
    pub world_size: usize,
    /// Trainable elements.
    pub trainable_elements: usize,
    /// Wall-clock seconds of training so far (carried across resumes).
    pub train_seconds: f64,
}

/// A complete checkpoint on disk.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Its directory.
    pub dir: PathBuf,
    /// The loop's position.
    pub state: TrainState,
}

fn dir_name(step: u64) -> String {
    format!("step-{step:08}")
}

fn parse_step(name: &str) -> Option<u64> {
    name.strip_prefix("step-")?.parse().ok()
}

/// Writes a checkpoint for `state.step` under `root`, then deletes all but the newest `keep`.
pub fn save(
    root: &Path,
    state: &TrainState,
    params: &FlatParams,
    moments: &AdamWState,
    keep: usize,
) -> anyhow::Result<PathBuf> {
    let final_dir = root.join(dir_name(state.step));
    let tmp = root.join(format!(
        ".tmp-{}-{}",
        dir_name(state.step),
        std::process::id()
    ));
    let write = || -> anyhow::Result<()> {
        fs::create_dir_all(&tmp)?;
        let mut named = HashMap::new();
        let mut moments_named = HashMap::new();
        for e in params.entries() {
            let name = e.id.hf_name();
            let range = e.offset..e.offset + e.len;
            named.insert(
                name.clone(),
                Tensor::from_slice(
                    &params.values[range.clone()],
                    e.shape.as_slice(),
                    &Device::Cpu,
                )?,
            );
            moments_named.insert(
                format!("{name}.exp_avg"),
                Tensor::from_slice(&moments.exp_avg[range.clone()], e.len, &Device::Cpu)?,
            );
            moments_named.insert(
                format!("{name}.exp_avg_sq"),
                Tensor::from_slice(&moments.exp_avg_sq[range], e.len, &Device::Cpu)?,
            );
        }
        moments_named.insert(
            "step".into(),
            Tensor::from_slice(&[moments.step as i64], 1, &Device::Cpu)?,
        );
        candle_core::safetensors::save(&named, tmp.join(PARAMS_FILE))?;
        candle_core::safetensors::save(&moments_named, tmp.join(OPTIMIZER_FILE))?;
        fs::write(tmp.join(STATE_FILE), serde_json::to_vec_pretty(state)?)?;
        for f in [PARAMS_FILE, OPTIMIZER_FILE, STATE_FILE] {
            fs::File::open(tmp.join(f))?.sync_all()?;
        }
        if final_dir.exists() {
            fs::remove_dir_all(&final_dir)?;
        }
        fs::rename(&tmp, &final_dir)?;
        fs::File::open(root)?.sync_all()?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e.context(format!(
            "writing checkpoint {} in {}",
            dir_name(state.step),
            root.display()
        )));
    }
    prune(root, keep)?;
    Ok(final_dir)
}

/// Checkpoint directories under `root`, newest first (temporary ones excluded).
pub fn list(root: &Path) -> anyhow::Result<Vec<(u64, PathBuf)>> {
    if !root.exists() {
        return Ok(vec![]);
    }
    let mut found = Vec::new();
    for entry in fs::read_dir(root).with_context(|| format!("listing {}", root.display()))? {
        let entry = entry?;
        if let Some(step) = entry.file_name().to_str().and_then(parse_step) {
            found.push((step, entry.path()));
        }
    }
    found.sort_by_key(|(step, _)| std::cmp::Reverse(*step));
    Ok(found)
}

fn prune(root: &Path, keep: usize) -> anyhow::Result<()> {
    for (_, dir) in list(root)?.into_iter().skip(keep.max(1)) {
        fs::remove_dir_all(&dir)
            .with_context(|| format!("deleting old checkpoint {}", dir.display()))?;
    }
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let stale = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(".tmp-"));
        if stale {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}

fn read_state(dir: &Path) -> anyhow::Result<TrainState> {
    let text = fs::read(dir.join(STATE_FILE)).with_context(|| format!("reading {STATE_FILE}"))?;
    let state: TrainState =
        serde_json::from_slice(&text).with_context(|| format!("parsing {STATE_FILE}"))?;
    ensure!(
        state.format == FORMAT,
        "checkpoint format {} is not supported (this build reads {FORMAT})",
        state.format
    );
    for f in [PARAMS_FILE, OPTIMIZER_FILE] {
        ensure!(dir.join(f).is_file(), "{f} is missing");
    }
    Ok(state)
}

/// The newest checkpoint under `root` whose files are intact. Broken newer ones are skipped with a
/// warning that says why.
pub fn newest(root: &Path) -> anyhow::Result<Option<Checkpoint>> {
    for (_, dir) in list(root)? {
        match read_state(&dir).and_then(|state| {
            candle_core::safetensors::load(dir.join(PARAMS_FILE), &Device::Cpu)
                .context("reading params")?;
            candle_core::safetensors::load(dir.join(OPTIMIZER_FILE), &Device::Cpu)
                .context("reading optimizer state")?;
            Ok(state)
        }) {
            Ok(state) => return Ok(Some(Checkpoint { dir, state })),
            Err(e) => tracing::warn!(
                "checkpoint {} is unusable ({e:#}); falling back to an older one",
                dir.display()
            ),
        }
    }
    Ok(None)
}

/// Loads a checkpoint's parameters into `params` and returns the optimizer moments.
pub fn restore(ckpt: &Checkpoint, params: &mut FlatParams) -> anyhow::Result<AdamWState> {
    let ctx = || format!("restoring {}", ckpt.dir.display());
    let named = candle_core::safetensors::load(ckpt.dir.join(PARAMS_FILE), &Device::Cpu)
        .with_context(ctx)?;
    let moments = candle_core::safetensors::load(ckpt.dir.join(OPTIMIZER_FILE), &Device::Cpu)
        .with_context(ctx)?;
    if named.len() != params.entries().len() {
        bail!(
            "{}: holds {} trainable tensors but this run trains {} (different mode or LoRA settings?)",
            ckpt.dir.display(),
            named.len(),
            params.entries().len()
        );
    }
    let mut m = vec![0.0; params.len()];
    let mut v = vec![0.0; params.len()];
    let entries = params.entries().to_vec();
    for e in entries {
        let name = e.id.hf_name();
        let get = |map: &HashMap<String, Tensor>, key: &str| -> anyhow::Result<Vec<f32>> {
            let t = map
                .get(key)
                .with_context(|| format!("{}: no tensor {key}", ckpt.dir.display()))?;
            Ok(t.flatten_all()?.to_vec1::<f32>()?)
        };
        params
            .set_values(e.id, &get(&named, &name)?)
            .with_context(ctx)?;
        let range = e.offset..e.offset + e.len;
        let (em, ev) = (
            get(&moments, &format!("{name}.exp_avg"))?,
            get(&moments, &format!("{name}.exp_avg_sq"))?,
        );
        ensure!(
            em.len() == e.len && ev.len() == e.len,
            "{}: optimizer state of {name} has the wrong size",
            ckpt.dir.display()
        );
        m[range.clone()].copy_from_slice(&em);
        v[range].copy_from_slice(&ev);
    }
    let step = moments
        .get("step")
        .context("optimizer state has no step")?
        .to_vec1::<i64>()?[0] as u64;
    Ok(AdamWState {
        step,
        exp_avg: m,
        exp_avg_sq: v,
    })
}
