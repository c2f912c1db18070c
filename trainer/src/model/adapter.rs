//! Reading a PEFT LoRA adapter directory back: `adapter_config.json` and
//! `adapter_model.safetensors` (as written by [`super::export::write_peft_adapter`] or PEFT).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail, ensure};
use candle_core::{DType, Device, Tensor};
use ferrotune_config::TargetModule;
use serde::Deserialize;

use super::export::AdapterSpec;
use super::params::ParamId;

#[derive(Deserialize)]
struct AdapterConfigFile {
    peft_type: Option<String>,
    r: usize,
    lora_alpha: f64,
    #[serde(default)]
    lora_dropout: f64,
    target_modules: TargetModules,
    #[serde(default)]
    base_model_name_or_path: Option<String>,
    #[serde(default)]
    use_dora: bool,
    #[serde(default)]
    use_rslora: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TargetModules {
    List(Vec<String>),
    One(String),
}

/// Whether `dir` holds a PEFT adapter.
pub fn is_adapter_dir(dir: &Path) -> bool {
    dir.join("adapter_config.json").is_file()
}

/// Reads an adapter: its settings and its A/B tensors by parameter id, on `device`.
pub fn read_peft_adapter(
    dir: &Path,
    device: &Device,
) -> anyhow::Result<(AdapterSpec, HashMap<ParamId, Tensor>)> {
    let config_path = dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    let file: AdapterConfigFile = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a PEFT adapter config", config_path.display()))?;
    if let Some(t) = &file.peft_type {
        ensure!(
            t == "LORA",
            "{}: peft_type {t} is not supported (LORA is)",
            config_path.display()
        );
    }
    ensure!(
        !file.use_dora && !file.use_rslora,
        "{}: DoRA and rsLoRA adapters are not supported",
        config_path.display()
    );
    let names = match file.target_modules {
        TargetModules::List(v) => v,
        TargetModules::One(s) if s == "all-linear" => TargetModule::ALL
            .iter()
            .map(|m| m.name().to_string())
            .collect(),
        TargetModules::One(s) => vec![s],
    };
    let target_modules = names
        .iter()
        .map(|n| {
            TargetModule::ALL
                .into_iter()
                .find(|m| m.name() == n)
                .with_context(|| {
                    format!(
                        "{}: target module `{n}` is not a Llama projection",
                        config_path.display()
                    )
                })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let spec = AdapterSpec {
        r: file.r,
        alpha: file.lora_alpha,
        dropout: file.lora_dropout,
        target_modules,
        base_model_name_or_path: file.base_model_name_or_path.unwrap_or_default(),
    };
    let weights = dir.join("adapter_model.safetensors");
    let mut tensors = HashMap::new();
    for (name, t) in candle_core::safetensors::load(&weights, device)
        .with_context(|| format!("reading {}", weights.display()))?
    {
        // PEFT keeps the adapter name in memory but not on disk; tolerate both spellings.
        let plain = name.replace(".default.weight", ".weight");
        let Some(id) = ParamId::from_peft_name(&plain) else {
            bail!(
                "{}: `{name}` is not a LoRA tensor of a Llama projection",
                weights.display()
            );
        };
        tensors.insert(id, t.to_dtype(DType::F32)?);
    }
    ensure!(
        !tensors.is_empty(),
        "{}: holds no LoRA tensors",
        weights.display()
    );
    Ok((spec, tensors))
}
