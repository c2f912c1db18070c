//! Hugging Face model directories: `config.json` plus `model.safetensors`, or
//! `model.safetensors.index.json` and the shards it lists, memory-mapped and converted to f32.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use ::safetensors::Dtype;
use anyhow::Context;
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use super::{LoadError, candle_cause, check_block_count, expected_tensors, missing_why};
use crate::model::config::LlamaConfig;
use crate::model::params::ParamId;

/// File name of an unsharded checkpoint.
pub(crate) const SINGLE_FILE: &str = "model.safetensors";
/// File name of a sharded checkpoint's index.
pub(crate) const INDEX_FILE: &str = "model.safetensors.index.json";

/// Reads `config.json` and every expected weight of a Hugging Face model directory.
pub(super) fn load(
    dir: &Path,
    device: &Device,
) -> anyhow::Result<(LlamaConfig, HashMap<String, Tensor>)> {
    let config_path = dir.join("config.json");
    if !config_path.is_file() {
        return Err(LoadError::NoConfigJson(dir.to_path_buf()).into());
    }
    let text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    let config =
        LlamaConfig::from_hf_json(&text).with_context(|| format!("{}", config_path.display()))?;
    let checkpoint = Checkpoint::open(dir)?;
    check_block_count(
        &config,
        checkpoint.routing.len(),
        &config_path,
        "num_hidden_layers",
    )?;
    let mut tensors = HashMap::new();
    for (id, expected) in expected_tensors(&config) {
        let tensor = checkpoint.tensor(id, &expected)?.to_device(device)?;
        tensors.insert(id.hf_name(), tensor);
    }
    Ok((config, tensors))
}

/// Why a safetensors header could not be read: a damaged file, or the reading itself.
fn header_error(path: &Path, e: candle_core::Error) -> anyhow::Error {
    match candle_cause(&e) {
        candle_core::Error::SafeTensor(problem) => LoadError::BadSafetensors {
            file: path.to_path_buf(),
            problem: problem.to_string(),
        }
        .into(),
        cause => anyhow::anyhow!("reading {}: {cause}", path.display()),
    }
}

/// `model.safetensors.index.json`: which shard holds each tensor.
#[derive(Deserialize)]
struct Index {
    weight_map: BTreeMap<String, String>,
}

/// The shard file names an index lists, each once, sorted.
pub(super) fn shard_names(index: &Path) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(index).with_context(|| format!("reading {}", index.display()))?;
    let index: Index = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} must be a JSON object with a `weight_map`",
            index.display()
        )
    })?;
    let shards: BTreeSet<String> = index.weight_map.into_values().collect();
    Ok(shards.into_iter().collect())
}

/// The memory-mapped safetensors files of one checkpoint.
struct Checkpoint {
    /// `model.safetensors`, or the index of a sharded checkpoint.
    origin: PathBuf,
    files: Vec<(PathBuf, MmapedSafetensors)>,
    /// Tensor name → position in `files`.
    routing: HashMap<String, usize>,
}

impl Checkpoint {
    fn open(dir: &Path) -> anyhow::Result<Self> {
        let index_path = dir.join(INDEX_FILE);
        let single = dir.join(SINGLE_FILE);
        let (origin, paths) = if index_path.is_file() {
            let shards = shard_names(&index_path)?;
            let mut paths = Vec::with_capacity(shards.len());
            for shard in shards {
                let path = dir.join(&shard);
                if Path::new(&shard).file_name() != Some(shard.as_ref()) || !path.is_file() {
                    return Err(LoadError::MissingShard {
                        index: index_path,
                        shard,
                    }
                    .into());
                }
                paths.push(path);
            }
            (index_path, paths)
        } else if single.is_file() {
            (single.clone(), vec![single])
        } else {
            return Err(LoadError::NoWeights(dir.to_path_buf()).into());
        };
        let mut files = Vec::with_capacity(paths.len());
        let mut routing = HashMap::new();
        for path in paths {
            // SAFETY: the mapping is read-only and the checkpoint is not modified while it is loaded.
            let st =
                unsafe { MmapedSafetensors::new(&path) }.map_err(|e| header_error(&path, e))?;
            for (name, _) in st.tensors() {
                routing.insert(name, files.len());
            }
            files.push((path, st));
        }
        Ok(Self {
            origin,
            files,
            routing,
        })
    }

    /// One tensor as f32 on the CPU, checked against its expected shape.
    fn tensor(&self, id: ParamId, expected: &[usize]) -> anyhow::Result<Tensor> {
        let name = id.hf_name();
        let name = name.as_str();
        let missing = || LoadError::MissingTensor {
            name: name.to_string(),
            file: self.origin.clone(),
            why: missing_why(id),
        };
        let (path, st) = &self.files[*self.routing.get(name).ok_or_else(missing)?];
        let view = st
            .get(name)
            .with_context(|| format!("reading `{name}` from {}", path.display()))?;
        if view.shape() != expected {
            return Err(LoadError::WrongShape {
                name: name.to_string(),
                file: path.clone(),
                shape: view.shape().to_vec(),
                expected: expected.to_vec(),
            }
            .into());
        }
        if !matches!(
            view.dtype(),
            Dtype::F32 | Dtype::BF16 | Dtype::F16 | Dtype::F64
        ) {
            return Err(LoadError::UnsupportedDtype {
                name: name.to_string(),
                file: path.clone(),
                dtype: format!("{:?}", view.dtype()),
                supported: "F32, BF16, F16, F64",
            }
            .into());
        }
        let tensor = st
            .load(name, &Device::Cpu)
            .with_context(|| format!("reading `{name}` from {}", path.display()))?;
        Ok(tensor.to_dtype(DType::F32)?)
    }
}
