//! The run's results in the course's layout, loadable by Hugging Face tools:
//! `lora_adapters/` (PEFT) or `final_model/` (transformers), optionally `merged_model/`, each with
//! the tokenizer files, and `training_duration.json`.

use std::path::{Path, PathBuf};

use ferrotune_config::{Config, Mode};

use crate::model::export::{AdapterSpec, ExportDtype, write_hf_model, write_peft_adapter};
use crate::model::llama::Llama;
use crate::tokenizer::Tokenizer;

/// Writes the trained adapters or model under `out` and returns the directory evaluation results
/// belong in (`lora_adapters/` or `final_model/`).
pub fn write(
    model: &Llama,
    tokenizer: &Tokenizer,
    config: &Config,
    base_name: &str,
    out: &Path,
) -> anyhow::Result<PathBuf> {
    let write_model = |dir: &Path| -> anyhow::Result<()> {
        write_hf_model(
            dir,
            &model.config,
            &model.merged_tensors()?,
            ExportDtype::F32,
        )?;
        tokenizer.save_hf(dir)?;
        Ok(())
    };
    match config.training.mode {
        Mode::Full => {
            let dir = out.join("final_model");
            write_model(&dir)?;
            tracing::info!("wrote {}", dir.display());
            Ok(dir)
        }
        Mode::Lora | Mode::Qlora => {
            let dir = out.join("lora_adapters");
            let spec = AdapterSpec {
                r: config.lora.r,
                alpha: config.lora.alpha,
                dropout: config.lora.dropout,
                target_modules: config.lora_targets(),
                base_model_name_or_path: base_name.to_string(),
            };
            write_peft_adapter(&dir, &model.adapter_tensors()?, &spec)?;
            tokenizer.save_hf(&dir)?;
            tracing::info!("wrote {}", dir.display());
            if config.output.merge_adapter {
                let merged = out.join("merged_model");
                write_model(&merged)?;
                tracing::info!("wrote {}", merged.display());
            }
            Ok(dir)
        }
    }
}
