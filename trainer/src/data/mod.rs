//! Reading dataset rows, turning them into tokenised samples with masked prompts, and batching.
//!
//! [`prepare`] runs the whole chain for a config: rows → training subset and evaluation rows →
//! samples with statistics. [`batch`] then orders and pads the samples for each step.

pub mod batch;
pub mod prompt;
pub mod rows;
pub mod shuffle;
pub mod split;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use ferrotune_config::Config;

pub use batch::{Batch, BatchLayout, collate, epoch_order};
pub use prompt::{Outcome, PromptBuilder, PromptError, Sample, SampleStats};
pub use rows::{Location, Row, RowsError, read_rows};
pub use split::{Split, split_rows};

use crate::tokenizer::Tokenizer;

/// The training samples and evaluation rows of a config.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Tokenised training samples, in the order of the shuffled subset.
    pub train: Vec<Sample>,
    /// What tokenisation kept, shortened and dropped.
    pub stats: SampleStats,
    /// Rows to generate summaries for and score.
    pub eval: Vec<Row>,
}

/// Reads `data.train` (and `data.eval`) and chooses the training subset and the evaluation rows.
pub fn split(config: &Config) -> Result<Split> {
    let data = &config.data;
    let read = |field: &str, written: &str| -> Result<Vec<Row>> {
        let path = expand(field, written)?;
        read_rows(&path, data.format, &data.input_field, &data.target_field)
            .with_context(|| field.to_owned())
    };
    let train_rows = read("data.train", &data.train)?;
    let eval_rows = data
        .eval
        .as_deref()
        .map(|eval| read("data.eval", eval))
        .transpose()?;
    split_rows(train_rows, eval_rows, data, config.eval.num_samples)
}

/// [`split`], then tokenises the training rows with the prompt settings and the length limit of
/// `config`.
pub fn prepare(config: &Config, tokenizer: &Tokenizer) -> Result<Prepared> {
    let data = &config.data;
    let split = split(config)?;
    let builder = PromptBuilder::new(tokenizer, &config.prompt).context("building prompts")?;
    let max_len = config.training.max_seq_length;
    let (train, stats) = builder
        .samples(&split.train, max_len, config.training.truncation)
        .with_context(|| format!("tokenising {}", data.train))?;
    if train.is_empty() {
        bail!(
            "{}: none of the {} training rows fits in training.max_seq_length = {max_len} tokens; raise it{}",
            data.train,
            stats.rows,
            match config.training.truncation {
                ferrotune_config::Truncation::Drop => " or set training.truncation: truncate_input",
                ferrotune_config::Truncation::TruncateInput => "",
            }
        );
    }
    Ok(Prepared {
        train,
        stats,
        eval: split.eval,
    })
}

fn expand(field: &str, written: &str) -> Result<PathBuf> {
    ferrotune_config::paths::expand(written).map_err(|e| anyhow::anyhow!("{field}: {e}"))
}
