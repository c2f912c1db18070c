//! Loading pretrained weights: a GGUF file, a Hugging Face model directory or a Hub repository
//! becomes a [`LlamaConfig`] and named f32 tensors in Hugging Face layout
//! (`model.layers.{i}.self_attn.q_proj.weight`, ...), validated against the config.

mod gguf;
pub mod hub;
mod safetensors;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ferrotune_config::{ModelConfig, TargetModule};

pub use gguf::read_header as read_gguf_header;

use super::config::LlamaConfig;
use super::params::ParamId;

/// Where the pretrained model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A llama.cpp GGUF file.
    Gguf(PathBuf),
    /// A Hugging Face model directory: `config.json` and safetensors weights.
    HfDir(PathBuf),
    /// A Hugging Face Hub repository, downloaded into (or read from) the Hub cache.
    Hub {
        /// Repository id, `owner/name`.
        repo: String,
        /// Branch, tag or commit.
        revision: String,
    },
}

/// The files a loaded model came from, for the loaders that read more of them (the tokenizer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelFiles {
    /// The GGUF file: its metadata holds the tokenizer and chat template.
    Gguf(PathBuf),
    /// The Hugging Face directory (a Hub snapshot for Hub models): `tokenizer.json`,
    /// `tokenizer_config.json`, `generation_config.json`.
    HfDir(PathBuf),
}

/// A pretrained model: its hyper-parameters and every weight, f32, in Hugging Face layout.
#[derive(Debug)]
pub struct LoadedModel {
    /// Hyper-parameters.
    pub config: LlamaConfig,
    /// Every tensor of [`expected_tensors`], by Hugging Face name ([`ParamId::hf_name`]).
    pub tensors: HashMap<String, Tensor>,
    /// A name for reports: the Hub id, or the file or directory name.
    pub name: String,
    /// Where the tokenizer and generation settings are.
    pub files: ModelFiles,
}

/// Failures a caller or user can act on, each naming the file or tensor at fault.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `model.path` names nothing.
    #[error("model path `{0}` does not exist")]
    PathMissing(PathBuf),
    /// A file that is not GGUF.
    #[error(
        "`{0}` is not a GGUF file (no GGUF magic): model.path must be a .gguf file or a Hugging Face model directory"
    )]
    NotGguf(PathBuf),
    /// A directory that is not a Hugging Face model.
    #[error(
        "`{0}` has no config.json: model.path must be a .gguf file or a Hugging Face model directory (config.json + safetensors weights)"
    )]
    NoConfigJson(PathBuf),
    /// A Hugging Face directory without safetensors weights.
    #[error(
        "`{0}` has neither model.safetensors nor model.safetensors.index.json (only safetensors weights are supported)"
    )]
    NoWeights(PathBuf),
    /// A shard listed by the index is not there.
    #[error("`{index}` lists shard `{shard}`, which does not exist")]
    MissingShard {
        /// The index file.
        index: PathBuf,
        /// The shard's file name.
        shard: String,
    },
    /// An expected weight is absent.
    #[error("`{file}` has no tensor `{name}`{why}")]
    MissingTensor {
        /// Tensor name as stored in the file.
        name: String,
        /// The weights file, or the index when sharded.
        file: PathBuf,
        /// Extra explanation, empty or starting with ` (` or `: `.
        why: String,
    },
    /// A weight whose shape does not match the config.
    #[error("tensor `{name}` in `{file}` has shape {shape:?}, but the config implies {expected:?}")]
    WrongShape {
        /// Hugging Face name.
        name: String,
        /// The file it was read from.
        file: PathBuf,
        /// Shape in the file.
        shape: Vec<usize>,
        /// Shape implied by the config.
        expected: Vec<usize>,
    },
    /// A weight stored in a type the loader does not convert.
    #[error("tensor `{name}` in `{file}` is stored as {dtype}; supported: {supported}")]
    UnsupportedDtype {
        /// Tensor name.
        name: String,
        /// The file it was read from.
        file: PathBuf,
        /// Its storage type.
        dtype: String,
        /// What is accepted.
        supported: &'static str,
    },
    /// A GGUF whose architecture or features this trainer does not run.
    #[error("`{file}`: {what}")]
    Unsupported {
        /// The model file.
        file: PathBuf,
        /// What is unsupported, and what is.
        what: String,
    },
    /// A GGUF file that ends before its header does.
    #[error(
        "`{0}` ends inside its GGUF header: the file is truncated (an interrupted download?); fetch it again"
    )]
    TruncatedGguf(PathBuf),
    /// A GGUF header that breaks the format's rules.
    #[error(
        "`{file}` is not a valid GGUF file ({problem}): it is damaged; download or convert it again"
    )]
    BadGguf {
        /// The GGUF file.
        file: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A safetensors file whose header cannot be read.
    #[error(
        "`{file}` is not a valid safetensors file ({problem}): it is truncated or damaged; download or export it again"
    )]
    BadSafetensors {
        /// The weights file.
        file: PathBuf,
        /// What the safetensors reader found wrong.
        problem: String,
    },
    /// A block count larger than the weights file could hold.
    #[error(
        "`{file}`: {key} is {blocks}, but the weights hold only {tensors} tensors, nine per block"
    )]
    TooManyBlocks {
        /// The file that gives the count (the GGUF, or config.json).
        file: PathBuf,
        /// The field: `llama.block_count` or `num_hidden_layers`.
        key: &'static str,
        /// The count given.
        blocks: usize,
        /// Tensors in the weights file(s).
        tensors: usize,
    },
    /// A GGUF without a required metadata key.
    #[error("`{file}` has no metadata key `{key}` (or it has the wrong type: {expected})")]
    MissingMetadata {
        /// The GGUF file.
        file: PathBuf,
        /// The key.
        key: String,
        /// The expected value type.
        expected: &'static str,
    },
}

impl ModelSource {
    /// Resolves the `model` block of a config: `path` (expanded) to a GGUF file or Hugging Face
    /// directory, checked on disk, or `hub` to a Hub repository at `revision`.
    pub fn from_config(config: &ModelConfig) -> anyhow::Result<Self> {
        match (&config.path, &config.hub) {
            (Some(path), None) => {
                let path = ferrotune_config::paths::expand(path)
                    .map_err(|e| anyhow::anyhow!("model.path: {e}"))?;
                Ok(Self::from_path(&path)?)
            }
            (None, Some(repo)) => Ok(Self::Hub {
                repo: repo.clone(),
                revision: config.revision.clone(),
            }),
            _ => anyhow::bail!(
                "model: set exactly one of `path` (a .gguf file or model directory) or `hub` (a repo id)"
            ),
        }
    }

    /// A local model: a directory must hold `config.json`, a file must be GGUF.
    pub fn from_path(path: &Path) -> Result<Self, LoadError> {
        if path.is_dir() {
            if !path.join("config.json").is_file() {
                return Err(LoadError::NoConfigJson(path.to_path_buf()));
            }
            Ok(Self::HfDir(path.to_path_buf()))
        } else if path.is_file() {
            if !gguf::has_magic(path) {
                return Err(LoadError::NotGguf(path.to_path_buf()));
            }
            Ok(Self::Gguf(path.to_path_buf()))
        } else {
            Err(LoadError::PathMissing(path.to_path_buf()))
        }
    }

    /// The name reports use when the config gives none: the Hub id, or the file or directory name.
    pub fn default_name(&self) -> String {
        match self {
            Self::Hub { repo, .. } => repo.clone(),
            Self::Gguf(path) | Self::HfDir(path) => path
                .canonicalize()
                .unwrap_or_else(|_| path.clone())
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string()),
        }
    }
}

/// Loads a model's config and weights onto `device`, as f32 in Hugging Face layout.
pub fn load(source: &ModelSource, device: &Device) -> anyhow::Result<LoadedModel> {
    let (config, tensors, files) = match source {
        ModelSource::Gguf(path) => {
            if !path.exists() {
                return Err(LoadError::PathMissing(path.clone()).into());
            }
            if !gguf::has_magic(path) {
                return Err(LoadError::NotGguf(path.clone()).into());
            }
            let (config, tensors) = gguf::load(path, device)?;
            (config, tensors, ModelFiles::Gguf(path.clone()))
        }
        ModelSource::HfDir(dir) => {
            if !dir.exists() {
                return Err(LoadError::PathMissing(dir.clone()).into());
            }
            let (config, tensors) = safetensors::load(dir, device)?;
            (config, tensors, ModelFiles::HfDir(dir.clone()))
        }
        ModelSource::Hub { repo, revision } => {
            let dir = hub::fetch(repo, revision, &hub::HubOptions::from_env())?;
            let (config, tensors) = safetensors::load(&dir, device)?;
            (config, tensors, ModelFiles::HfDir(dir))
        }
    };
    Ok(LoadedModel {
        config,
        tensors,
        name: source.default_name(),
        files,
    })
}

/// The error inside candle's wrappers (backtrace, file path, context), to tell what went wrong
/// with a file that the caller names itself.
fn candle_cause(mut e: &candle_core::Error) -> &candle_core::Error {
    loop {
        e = match e {
            candle_core::Error::WithBacktrace { inner, .. }
            | candle_core::Error::WithPath { inner, .. }
            | candle_core::Error::Context { inner, .. } => inner,
            other => return other,
        };
    }
}

/// Rejects a block count above the number of weights at hand, before [`expected_tensors`] lists
/// every block's: a damaged count must not allocate per block. (A count the weights merely fall
/// short of is reported as the first missing tensor.)
fn check_block_count(
    config: &LlamaConfig,
    tensors: usize,
    file: &Path,
    key: &'static str,
) -> Result<(), LoadError> {
    if config.num_hidden_layers > tensors {
        return Err(LoadError::TooManyBlocks {
            file: file.to_path_buf(),
            key,
            blocks: config.num_hidden_layers,
            tensors,
        });
    }
    Ok(())
}

/// Every weight a Llama model of this config has, with its shape (`[out, in]` for projections),
/// in checkpoint order. [`ParamId::LmHead`] is listed only when embeddings are untied.
pub fn expected_tensors(config: &LlamaConfig) -> Vec<(ParamId, Vec<usize>)> {
    let h = config.hidden_size;
    let mut out = vec![(ParamId::Embed, vec![config.vocab_size, h])];
    for layer in 0..config.num_hidden_layers {
        out.push((ParamId::AttnNorm(layer), vec![h]));
        for m in TargetModule::ALL {
            out.push((ParamId::Proj(layer, m), projection_shape(config, m)));
        }
        out.push((ParamId::MlpNorm(layer), vec![h]));
    }
    out.push((ParamId::FinalNorm, vec![h]));
    if !config.tie_word_embeddings {
        out.push((ParamId::LmHead, vec![config.vocab_size, h]));
    }
    out
}

/// `[out, in]` of a projection's weight.
fn projection_shape(config: &LlamaConfig, m: TargetModule) -> Vec<usize> {
    let h = config.hidden_size;
    let q = config.num_attention_heads * config.head_dim;
    let kv = config.num_key_value_heads * config.head_dim;
    let ff = config.intermediate_size;
    match m {
        TargetModule::QProj => vec![q, h],
        TargetModule::KProj | TargetModule::VProj => vec![kv, h],
        TargetModule::OProj => vec![h, q],
        TargetModule::GateProj | TargetModule::UpProj => vec![ff, h],
        TargetModule::DownProj => vec![h, ff],
    }
}

/// Explanation for a missing weight.
fn missing_why(id: ParamId) -> String {
    if id == ParamId::LmHead {
        ": tie_word_embeddings is false, so the output projection must be stored".to_string()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_tensors_follow_the_config() {
        let cfg = LlamaConfig {
            vocab_size: 10,
            hidden_size: 8,
            intermediate_size: 12,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            head_dim: 4,
            rms_norm_eps: 1e-5,
            rope_theta: 1e4,
            rope_scaling: None,
            max_position_embeddings: 32,
            tie_word_embeddings: true,
            bos_token_id: None,
            eos_token_ids: vec![],
        };
        let tied: HashMap<_, _> = expected_tensors(&cfg).into_iter().collect();
        assert_eq!(tied.len(), 1 + 2 * 9 + 1);
        assert_eq!(tied[&ParamId::Proj(1, TargetModule::KProj)], vec![8, 8]);
        assert_eq!(tied[&ParamId::Proj(0, TargetModule::OProj)], vec![8, 16]);
        assert_eq!(tied[&ParamId::Proj(0, TargetModule::DownProj)], vec![8, 12]);
        assert!(!tied.contains_key(&ParamId::LmHead));
        let untied = expected_tensors(&LlamaConfig {
            tie_word_embeddings: false,
            ..cfg
        });
        assert_eq!(untied.last().unwrap(), &(ParamId::LmHead, vec![10, 8]));
    }
}
