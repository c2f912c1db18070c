//! Writing results in the layouts transformers and PEFT load: a full model directory
//! (`config.json`, `generation_config.json`, `model.safetensors` or shards + index) and a LoRA adapter
//! (`adapter_config.json`, `adapter_model.safetensors`). Every file is written atomically.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use ferrotune_config::TargetModule;
use serde_json::json;

use super::config::LlamaConfig;
use super::load::expected_tensors;
use super::params::ParamId;
use crate::atomic::write_atomic;

/// Precision of exported weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportDtype {
    /// 32-bit floats.
    F32,
    /// bfloat16, rounded to nearest even.
    Bf16,
}

impl ExportDtype {
    fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::Bf16 => DType::BF16,
        }
    }

    /// The `torch_dtype` written into `config.json`.
    pub fn torch_name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::Bf16 => "bfloat16",
        }
    }
}

/// Largest shard [`write_hf_model`] writes: 5 GB, the size transformers 4 and the Hub tooling use.
pub const MAX_SHARD_BYTES: u64 = 5_000_000_000;

/// Writes tensors as one safetensors file, atomically, with `{"format": "pt"}` plus `metadata`
/// in its header (transformers and PEFT expect the format key).
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    dtype: ExportDtype,
    metadata: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let mut names = BTreeSet::new();
    let mut converted = Vec::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        anyhow::ensure!(
            names.insert(name.as_str()),
            "tensor `{name}` is given twice for {}",
            path.display()
        );
        let t = tensor
            .to_device(&Device::Cpu)?
            .to_dtype(dtype.dtype())?
            .contiguous()?;
        converted.push((name.as_str(), t));
    }
    let mut header: HashMap<String, String> = metadata.clone().into_iter().collect();
    header.insert("format".to_string(), "pt".to_string());
    write_atomic(path, |tmp| {
        safetensors::serialize_to_file(converted, Some(header), tmp).map_err(anyhow::Error::from)
    })
}

/// Writes a model directory transformers' `AutoModelForCausalLM.from_pretrained` loads:
/// `config.json`, `generation_config.json` and the weights, sharded above [`MAX_SHARD_BYTES`].
/// `tensors` must hold every weight of [`expected_tensors`] with its shape; `lm_head.weight` is left out
/// when embeddings are tied, as transformers does.
pub fn write_hf_model(
    dir: &Path,
    config: &LlamaConfig,
    tensors: &[(String, Tensor)],
    dtype: ExportDtype,
) -> anyhow::Result<()> {
    write_hf_model_sharded(dir, config, tensors, dtype, MAX_SHARD_BYTES)
}

/// [`write_hf_model`] with a chosen shard size: tensors go, in order, into shards of at most
/// `max_shard_bytes` (a larger tensor gets a shard of its own), named `model-00001-of-0000N.safetensors`
/// and listed in `model.safetensors.index.json`; a single shard is `model.safetensors`.
pub fn write_hf_model_sharded(
    dir: &Path,
    config: &LlamaConfig,
    tensors: &[(String, Tensor)],
    dtype: ExportDtype,
    max_shard_bytes: u64,
) -> anyhow::Result<()> {
    let ordered = model_tensors(config, tensors)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let bytes_per = dtype.dtype().size_in_bytes() as u64;
    let mut shards: Vec<Vec<(String, Tensor)>> = Vec::new();
    let mut current = 0u64;
    for (name, tensor) in ordered {
        let size = tensor.elem_count() as u64 * bytes_per;
        if shards.is_empty() || current + size > max_shard_bytes {
            shards.push(Vec::new());
            current = 0;
        }
        current += size;
        shards
            .last_mut()
            .expect("a shard was pushed")
            .push((name, tensor));
    }
    let n = shards.len();
    let file_name = |i: usize| {
        if n == 1 {
            "model.safetensors".to_string()
        } else {
            format!("model-{:05}-of-{n:05}.safetensors", i + 1)
        }
    };
    let mut weight_map = BTreeMap::new();
    let (mut total_size, mut total_parameters) = (0u64, 0u64);
    for (i, shard) in shards.iter().enumerate() {
        write_safetensors(&dir.join(file_name(i)), shard, dtype, &BTreeMap::new())?;
        for (name, t) in shard {
            weight_map.insert(name.clone(), file_name(i));
            total_parameters += t.elem_count() as u64;
            total_size += t.elem_count() as u64 * bytes_per;
        }
    }
    if n > 1 {
        let index = json!({
            "metadata": {"total_size": total_size, "total_parameters": total_parameters},
            "weight_map": weight_map,
        });
        write_json(&dir.join("model.safetensors.index.json"), &index)?;
    }
    let written: BTreeSet<String> = (0..n).map(file_name).collect();
    remove_stale_weights(dir, &written)?;
    write_json(
        &dir.join("config.json"),
        &config.to_hf_json(dtype.torch_name()),
    )?;
    write_json(
        &dir.join("generation_config.json"),
        &generation_config(config),
    )
}

/// The model's weights in [`expected_tensors`] order, each checked against the config.
fn model_tensors(
    config: &LlamaConfig,
    tensors: &[(String, Tensor)],
) -> anyhow::Result<Vec<(String, Tensor)>> {
    let mut given: HashMap<&str, &Tensor> = HashMap::new();
    for (name, t) in tensors {
        anyhow::ensure!(
            given.insert(name, t).is_none(),
            "tensor `{name}` is given twice"
        );
    }
    if config.tie_word_embeddings {
        given.remove(ParamId::LmHead.hf_name().as_str());
    }
    let mut out = Vec::new();
    for (id, shape) in expected_tensors(config) {
        let name = id.hf_name();
        let t = given
            .remove(name.as_str())
            .with_context(|| format!("the model to export has no tensor `{name}`"))?;
        anyhow::ensure!(
            t.dims() == shape.as_slice(),
            "tensor `{name}` has shape {:?}, the config implies {shape:?}",
            t.dims()
        );
        out.push((name, t.clone()));
    }
    if let Some(extra) = given.keys().min() {
        anyhow::bail!(
            "tensor `{extra}` is not a weight of a Llama model with this config; refusing to export it"
        );
    }
    Ok(out)
}

/// Removes weight files of an earlier export that the new one did not write.
fn remove_stale_weights(dir: &Path, written: &BTreeSet<String>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let weights = name == "model.safetensors"
            || (name.starts_with("model-")
                && name.contains("-of-")
                && name.ends_with(".safetensors"));
        let stale_index = name == "model.safetensors.index.json" && written.len() == 1;
        if (weights && !written.contains(&name)) || stale_index {
            let path = dir.join(&name);
            std::fs::remove_file(&path)
                .with_context(|| format!("removing stale {}", path.display()))?;
        }
    }
    Ok(())
}

fn generation_config(config: &LlamaConfig) -> serde_json::Value {
    let mut v = json!({});
    if let Some(bos) = config.bos_token_id {
        v["bos_token_id"] = json!(bos);
    }
    match config.eos_token_ids.as_slice() {
        [] => {}
        [one] => v["eos_token_id"] = json!(one),
        many => v["eos_token_id"] = json!(many),
    }
    v
}

/// A LoRA adapter's settings, as recorded in `adapter_config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterSpec {
    /// Rank.
    pub r: usize,
    /// Scaling numerator (the update is scaled by alpha / r).
    pub alpha: f64,
    /// Dropout on the adapter input during training.
    pub dropout: f64,
    /// Projections carrying adapters.
    pub target_modules: Vec<TargetModule>,
    /// The base model: a Hub id or a path.
    pub base_model_name_or_path: String,
}

/// Writes a PEFT LoRA adapter directory that `peft.PeftModel.from_pretrained(base, dir)` loads:
/// `adapter_config.json` and `adapter_model.safetensors` (f32). `tensors` carry PEFT's names
/// ([`ParamId::peft_name`]); every adapted projection needs its A `[r, in]` and B `[out, r]`, and must
/// be one of `spec.target_modules`.
pub fn write_peft_adapter(
    dir: &Path,
    tensors: &[(String, Tensor)],
    spec: &AdapterSpec,
) -> anyhow::Result<()> {
    anyhow::ensure!(spec.r > 0, "LoRA rank r must be positive");
    // (layer, module) → how many A and B matrices were given.
    let mut pairs: BTreeMap<(usize, TargetModule), (usize, usize)> = BTreeMap::new();
    for (name, t) in tensors {
        let not_lora = || {
            format!(
                "`{name}` is not a PEFT LoRA tensor name \
                 (base_model.model.model.layers.<i>.<self_attn|mlp>.<module>.lora_<A|B>.weight)"
            )
        };
        let (layer, module, is_a) = match ParamId::from_peft_name(name).with_context(not_lora)? {
            ParamId::LoraA(layer, m) => (layer, m, true),
            ParamId::LoraB(layer, m) => (layer, m, false),
            _ => anyhow::bail!(not_lora()),
        };
        anyhow::ensure!(
            spec.target_modules.contains(&module),
            "`{name}` adapts `{}`, which is not in target_modules {:?}",
            module.name(),
            spec.target_modules
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
        );
        let (rows, cols) = t
            .dims2()
            .with_context(|| format!("LoRA tensor `{name}` must be a matrix"))?;
        let rank = if is_a { rows } else { cols };
        anyhow::ensure!(
            rank == spec.r,
            "LoRA tensor `{name}` has shape [{rows}, {cols}], which is not rank r = {}",
            spec.r
        );
        let counts = pairs.entry((layer, module)).or_default();
        if is_a {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
    }
    for ((layer, module), counts) in &pairs {
        anyhow::ensure!(
            *counts == (1, 1),
            "`{}` needs exactly one lora_A and one lora_B (got {} and {})",
            ParamId::Proj(*layer, *module),
            counts.0,
            counts.1
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_safetensors(
        &dir.join("adapter_model.safetensors"),
        tensors,
        ExportDtype::F32,
        &BTreeMap::new(),
    )?;
    write_json(&dir.join("adapter_config.json"), &adapter_config(spec))
}

/// `adapter_config.json` with the fields PEFT 0.21 writes for a LoRA adapter on a causal LM.
fn adapter_config(spec: &AdapterSpec) -> serde_json::Value {
    let targets: BTreeSet<&str> = spec.target_modules.iter().map(|m| m.name()).collect();
    let alpha = if spec.alpha.fract() == 0.0 && spec.alpha.abs() < 1e15 {
        json!(spec.alpha as i64)
    } else {
        json!(spec.alpha)
    };
    json!({
        "alora_invocation_tokens": null,
        "alpha_pattern": {},
        "arrow_config": null,
        "auto_mapping": null,
        "base_model_name_or_path": spec.base_model_name_or_path,
        "bias": "none",
        "corda_config": null,
        "ensure_weight_tying": false,
        "eva_config": null,
        "exclude_modules": null,
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "layer_replication": null,
        "layers_pattern": null,
        "layers_to_transform": null,
        "loftq_config": {},
        "lora_alpha": alpha,
        "lora_bias": false,
        "lora_dropout": spec.dropout,
        "megatron_config": null,
        "megatron_core": "megatron.core",
        "modules_to_save": null,
        "peft_type": "LORA",
        "qalora_group_size": 16,
        "r": spec.r,
        "rank_pattern": {},
        "revision": null,
        "target_modules": targets,
        "target_parameters": null,
        "task_type": "CAUSAL_LM",
        "trainable_token_indices": null,
        "use_dora": false,
        "use_qalora": false,
        "use_rslora": false
    })
}

/// Writes pretty JSON atomically.
fn write_json(path: &Path, value: &serde_json::Value) -> anyhow::Result<()> {
    write_atomic(path, |tmp| {
        let mut text = serde_json::to_string_pretty(value)?;
        text.push('\n');
        std::fs::write(tmp, text)?;
        Ok(())
    })
}
