//! Checkpoints: trainable parameters, optimizer moments and the loop's position. Every rank
//! writes its own part of the trainable tensors into one file, in parallel; rank 0 then writes
//! the position and renames the directory into place, so a crash never leaves a half-written
//! checkpoint. A checkpoint of any world size resumes at any other: the parts are put back
//! together by tensor name. Each part has a CRC-32 beside it; the newest checkpoint whose parts
//! match their checksums is resumed, falling back past damaged ones.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use candle_core::{Device, Tensor};
use ferrotune_config::{Mode, Strategy};
use serde::{Deserialize, Serialize};

use super::partition::{Piece, Whole};
use crate::dist::Collective;
use crate::faults::{self, Point};

const STATE_FILE: &str = "state.json";
/// The checkpoint layout this build writes and reads.
pub const FORMAT: u32 = 3;
const PARTS: [&str; 3] = ["value", "exp_avg", "exp_avg_sq"];

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
    /// Processes that wrote it (one file each).
    pub world_size: usize,
    /// How they split the state.
    pub strategy: Strategy,
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

/// The file rank `rank` of `world` writes.
pub fn shard_file(rank: usize, world: usize) -> String {
    format!("shard-{rank:05}-of-{world:05}.safetensors")
}

/// The checksum file beside a part.
fn checksum_file(part: &str) -> String {
    format!("{part}.crc32")
}

/// CRC-32 of a file's bytes.
fn crc32(path: &Path) -> anyhow::Result<u32> {
    let mut file = fs::File::open(path)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf)? {
            0 => return Ok(hasher.finalize()),
            n => hasher.update(&buf[..n]),
        }
    }
}

/// Whether every rank succeeded at something: `failed` is this rank's view; all ranks call it.
fn all_ok(comm: &mut dyn Collective, failed: bool) -> anyhow::Result<bool> {
    Ok(comm.sum_f64(&[f64::from(u8::from(failed))])?[0] == 0.0)
}

/// Writes the checkpoint for `state.step` under `root` (every rank calls it, with its own
/// `pieces`), then deletes all but the newest `keep`. On failure the older checkpoints are as
/// they were; a full disk is named as such.
pub fn save(
    root: &Path,
    state: &TrainState,
    pieces: &[Piece],
    comm: &mut dyn Collective,
    keep: usize,
) -> anyhow::Result<PathBuf> {
    write(root, state, pieces, comm, keep).map_err(|e| {
        // Wrapping errors (candle's, safetensors') hide the io::Error but keep its text.
        let enospc = format!("(os error {})", libc::ENOSPC);
        let full = e.chain().any(|c| c.to_string().contains(&enospc));
        if full {
            e.context(format!(
                "the disk holding {} is full: free space there or lower training.save_total_limit \
                 (older checkpoints are intact)",
                root.display()
            ))
        } else {
            e
        }
    })
}

fn write(
    root: &Path,
    state: &TrainState,
    pieces: &[Piece],
    comm: &mut dyn Collective,
    keep: usize,
) -> anyhow::Result<PathBuf> {
    let (rank, world) = (comm.rank(), comm.world());
    let final_dir = root.join(dir_name(state.step));
    let tmp = root.join(format!(".tmp-{}", dir_name(state.step)));
    let context = || {
        format!(
            "writing checkpoint {} in {}",
            dir_name(state.step),
            root.display()
        )
    };
    let prepared = if rank == 0 {
        (|| -> anyhow::Result<()> {
            if tmp.exists() {
                fs::remove_dir_all(&tmp)?;
            }
            fs::create_dir_all(&tmp)?;
            Ok(())
        })()
    } else {
        Ok(())
    };
    if !all_ok(comm, prepared.is_err())? {
        return Err(prepared
            .err()
            .unwrap_or_else(|| anyhow::anyhow!("rank 0 failed")))
        .with_context(context);
    }
    let written =
        write_shard(&tmp.join(shard_file(rank, world)), state.step, pieces).with_context(|| {
            format!(
                "rank {rank} writing its part (every rank must see the same {})",
                root.display()
            )
        });
    if !all_ok(comm, written.is_err())? {
        if rank == 0 {
            let _ = fs::remove_dir_all(&tmp);
        }
        return Err(written
            .err()
            .unwrap_or_else(|| anyhow::anyhow!("another rank could not write its part")))
        .with_context(context);
    }
    faults::reach(Point::CheckpointParts, state.step);
    let committed = if rank == 0 {
        commit(&tmp, &final_dir, root, state).and_then(|()| prune(root, keep))
    } else {
        Ok(())
    };
    if !all_ok(comm, committed.is_err())? {
        if rank == 0 {
            let _ = fs::remove_dir_all(&tmp);
        }
        return Err(committed
            .err()
            .unwrap_or_else(|| anyhow::anyhow!("rank 0 could not finish it")))
        .with_context(context);
    }
    Ok(final_dir)
}

fn write_shard(path: &Path, step: u64, pieces: &[Piece]) -> anyhow::Result<()> {
    let mut named = HashMap::new();
    named.insert(
        "step".to_string(),
        Tensor::from_slice(&[step as i64], 1, &Device::Cpu)?,
    );
    for p in pieces {
        for (part, data) in PARTS.iter().zip([&p.values, &p.exp_avg, &p.exp_avg_sq]) {
            named.insert(
                format!("{}@{}/{part}", p.name, p.start),
                Tensor::from_slice(data, data.len(), &Device::Cpu)?,
            );
        }
    }
    candle_core::safetensors::save(&named, path)?;
    fs::File::open(path)?.sync_all()?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let sum = path.with_file_name(checksum_file(&name.unwrap_or_default()));
    fs::write(&sum, format!("{:08x}\n", crc32(path)?))?;
    fs::File::open(&sum)?.sync_all()?;
    Ok(())
}

fn commit(tmp: &Path, final_dir: &Path, root: &Path, state: &TrainState) -> anyhow::Result<()> {
    let state_path = tmp.join(STATE_FILE);
    fs::write(&state_path, serde_json::to_vec_pretty(state)?)?;
    fs::File::open(&state_path)?.sync_all()?;
    faults::reach(Point::CheckpointCommit, state.step);
    if final_dir.exists() {
        fs::remove_dir_all(final_dir)?;
    }
    fs::rename(tmp, final_dir)?;
    fs::File::open(root)?.sync_all()?;
    Ok(())
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
    Ok(state)
}

fn load_shards(dir: &Path, world: usize) -> anyhow::Result<Vec<HashMap<String, Tensor>>> {
    (0..world)
        .map(|r| {
            let f = shard_file(r, world);
            verify(dir, &f)?;
            candle_core::safetensors::load(dir.join(&f), &Device::Cpu)
                .with_context(|| format!("reading {f}"))
        })
        .collect()
}

/// Checks a part against the checksum written beside it.
fn verify(dir: &Path, part: &str) -> anyhow::Result<()> {
    let sum = checksum_file(part);
    let text = fs::read_to_string(dir.join(&sum)).with_context(|| format!("reading {sum}"))?;
    let want = u32::from_str_radix(text.trim(), 16)
        .with_context(|| format!("{sum} holds no CRC-32 ({:?})", text.trim()))?;
    let got = crc32(&dir.join(part)).with_context(|| format!("reading {part}"))?;
    ensure!(
        got == want,
        "{part} is damaged: its CRC-32 is {got:08x}, {sum} says {want:08x}"
    );
    Ok(())
}

/// The newest checkpoint under `root` whose files are intact. Broken newer ones are skipped with a
/// warning that says why.
pub fn newest(root: &Path) -> anyhow::Result<Option<Checkpoint>> {
    for (_, dir) in list(root)? {
        match read_state(&dir).and_then(|state| {
            load_shards(&dir, state.world_size)?;
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

/// Reads a checkpoint's trainable tensors whole — `trainable` names them with their element
/// counts — and the optimizer's step count.
pub fn restore(
    ckpt: &Checkpoint,
    trainable: &[(String, usize)],
) -> anyhow::Result<(HashMap<String, Whole>, u64)> {
    let dir = &ckpt.dir;
    let ctx = || format!("restoring {}", dir.display());
    let shards = load_shards(dir, ckpt.state.world_size).with_context(ctx)?;
    let sizes: HashMap<&str, usize> = trainable.iter().map(|(n, l)| (n.as_str(), *l)).collect();
    let mut whole: HashMap<String, (Whole, usize)> = HashMap::new();
    let mut step = None;
    for shard in &shards {
        for (key, t) in shard {
            if key == "step" {
                let count = t.to_vec1::<i64>().ok().and_then(|v| v.first().copied());
                let count = count
                    .with_context(|| format!("{}: `step` must hold one i64", dir.display()))?;
                step = Some(count as u64);
                continue;
            }
            let parsed = key
                .rsplit_once('/')
                .and_then(|(head, part)| Some((head.rsplit_once('@')?, part)));
            let Some(((name, start), part)) = parsed else {
                bail!("{}: unexpected tensor {key}", dir.display());
            };
            let start: usize = start
                .parse()
                .with_context(|| format!("{}: bad offset in {key}", dir.display()))?;
            let Some(&len) = sizes.get(name) else {
                bail!(
                    "{}: holds {name}, which this run does not train (different mode or LoRA settings?)",
                    dir.display()
                );
            };
            let data = t
                .to_vec1::<f32>()
                .with_context(|| format!("{}: {key} must be a 1-D f32 tensor", dir.display()))?;
            ensure!(
                start.checked_add(data.len()).is_some_and(|end| end <= len),
                "{}: {key} runs past the {len} elements of {name}",
                dir.display()
            );
            let (w, filled) = whole.entry(name.to_string()).or_insert_with(|| {
                (
                    Whole {
                        values: vec![0.0; len],
                        exp_avg: vec![0.0; len],
                        exp_avg_sq: vec![0.0; len],
                    },
                    0,
                )
            });
            let target = match part {
                "value" => {
                    *filled += data.len();
                    &mut w.values
                }
                "exp_avg" => &mut w.exp_avg,
                "exp_avg_sq" => &mut w.exp_avg_sq,
                _ => bail!("{}: unexpected tensor {key}", dir.display()),
            };
            target[start..start + data.len()].copy_from_slice(&data);
        }
    }
    for (name, len) in trainable {
        let filled = whole.get(name).map_or(0, |(_, f)| *f);
        ensure!(
            filled == *len,
            "{}: holds {filled} of the {len} values of {name} (different mode or LoRA settings?)",
            dir.display()
        );
    }
    let step = step.with_context(|| format!("{}: no optimizer step count", dir.display()))?;
    Ok((whole.into_iter().map(|(k, (w, _))| (k, w)).collect(), step))
}
