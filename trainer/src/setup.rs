//! What `train` and `eval` both start from: the device, the base model's weights and its
//! tokenizer (with the config's chat-template override), resolved from a config.

use anyhow::Context;
use candle_core::Device;
use ferrotune_config::Config;

use crate::device;
use crate::model::load::{LoadedModel, ModelFiles, ModelSource, load, read_gguf_header};
use crate::tokenizer::Tokenizer;

/// The base model as loaded, ready to be adapted.
pub struct Base {
    /// Weights and architecture.
    pub model: LoadedModel,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// Where the weights live.
    pub device: Device,
    /// The name recorded in results (`model.name`, else the Hub id or file name).
    pub name: String,
}

/// Loads the config's base model and tokenizer onto the device of `local_rank`.
pub fn load_base(config: &Config, local_rank: usize) -> anyhow::Result<Base> {
    let device = device::resolve(config.training.device, local_rank)?;
    let source = ModelSource::from_config(&config.model)?;
    let model = load(&source, &device)?;
    let mut tokenizer = match &model.files {
        ModelFiles::Gguf(path) => {
            let content = read_gguf_header(path)?;
            Tokenizer::from_gguf(&content)
                .with_context(|| format!("tokenizer of {}", path.display()))?
        }
        // Its errors name the tokenizer file at fault.
        ModelFiles::HfDir(dir) => {
            Tokenizer::from_hf_dir(dir).context("loading the model's tokenizer")?
        }
    };
    if let Some(template) = &config.prompt.chat_template {
        tokenizer
            .set_chat_template(template)
            .context("prompt.chat_template")?;
    }
    anyhow::ensure!(
        tokenizer.vocab_size() <= model.config.vocab_size,
        "the tokenizer has {} tokens but the model only {} embeddings",
        tokenizer.vocab_size(),
        model.config.vocab_size
    );
    let name = config
        .model
        .name
        .clone()
        .unwrap_or_else(|| model.name.clone());
    Ok(Base {
        model,
        tokenizer,
        device,
        name,
    })
}
