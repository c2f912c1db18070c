//! Rows to chat prompts and tokenised training samples with a loss mask.
//!
//! A row's user turn is `prompt.user_template` with `{dialogue}` replaced by the input, after the
//! optional system message. The prompt is that conversation rendered with the generation prompt;
//! the full text adds the target as the assistant's turn. The two are tokenised separately (the
//! prompt exactly as generation will see it), and the sample keeps the target's tokens up to and
//! including the first stop token (eos is appended when the template writes none). Loss is taken
//! on the target tokens only.

use std::fmt;

use ferrotune_config::{PromptConfig, Truncation};
use rayon::prelude::*;

use super::rows::{Location, Row};
use crate::tokenizer::{ChatMessage, ChatTemplate, Tokenizer, TokenizerError};

/// One tokenised training example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Prompt tokens, then target tokens ending with a stop token.
    pub ids: Vec<u32>,
    /// Number of prompt tokens: the loss is taken on `ids[prompt_len..]` only.
    pub prompt_len: usize,
}

impl Sample {
    fn join(mut prompt: Vec<u32>, target: &[u32]) -> Self {
        let prompt_len = prompt.len();
        prompt.extend_from_slice(target);
        Self {
            ids: prompt,
            prompt_len,
        }
    }

    /// Total number of tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the sample has no tokens (never true for built samples).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The target tokens.
    pub fn target(&self) -> &[u32] {
        &self.ids[self.prompt_len..]
    }
}

/// Why a row cannot become a sample.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// Rendering or tokenising failed.
    #[error("{location}: {source}")]
    Tokenizer {
        location: Location,
        source: TokenizerError,
    },
    /// The template renders the prompt differently when the assistant turn follows.
    #[error(
        "{location}: the chat template's text for prompt + target does not start with its text for the \
         prompt alone, so the target cannot be told apart; use a template that renders earlier turns the \
         same whatever follows (prompt.chat_template)"
    )]
    NotAPrefix { location: Location },
    /// The template left the target out of the assistant turn.
    #[error("{location}: the chat template does not write the target text into the assistant turn")]
    TargetNotRendered { location: Location },
    /// The target itself holds a token that ends the turn.
    #[error(
        "{location}: the target contains `{token}`, which ends the assistant's turn; remove it from the data"
    )]
    StopInTarget { location: Location, token: String },
}

/// What became of one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The whole row fits.
    Fits(Sample),
    /// The input was shortened to its first `kept_chars` of `input_chars` characters.
    Truncated {
        sample: Sample,
        kept_chars: usize,
        input_chars: usize,
    },
    /// The row does not fit (with `truncate_input`: not even with an empty input).
    Dropped { len: usize },
}

/// Counts over a set of rows, for the trainer to report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SampleStats {
    /// Rows seen.
    pub rows: usize,
    /// Samples built (truncated ones included).
    pub kept: usize,
    /// Samples whose input was shortened.
    pub truncated: usize,
    /// Rows left out because they do not fit.
    pub dropped: usize,
    /// Where the dropped rows are.
    pub dropped_rows: Vec<Location>,
    /// The longest kept sample, in tokens.
    pub longest: usize,
    /// Mean kept sample length, in tokens.
    pub mean_len: f64,
    /// Target tokens over all kept samples (the tokens the loss is taken on).
    pub target_tokens: usize,
    /// The length limit applied.
    pub max_seq_length: usize,
}

impl fmt::Display for SampleStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rows -> {} samples ({} with a shortened input, {} dropped as longer than {} tokens); \
             longest {} tokens, mean {:.1}, {} target tokens",
            self.rows,
            self.kept,
            self.truncated,
            self.dropped,
            self.max_seq_length,
            self.longest,
            self.mean_len,
            self.target_tokens
        )
    }
}

/// Turns rows into prompts and samples with one tokenizer and prompt configuration.
#[derive(Debug, Clone)]
pub struct PromptBuilder<'t> {
    tokenizer: &'t Tokenizer,
    template: ChatTemplate,
    system: Option<String>,
    user_template: String,
}

impl<'t> PromptBuilder<'t> {
    /// Uses `config.chat_template` when set, else the tokenizer's own template.
    pub fn new(tokenizer: &'t Tokenizer, config: &PromptConfig) -> Result<Self, TokenizerError> {
        let template = match &config.chat_template {
            Some(source) => tokenizer.compile_chat_template(source)?,
            None => tokenizer.chat_template()?.clone(),
        };
        Ok(Self {
            tokenizer,
            template,
            system: config.system.clone(),
            user_template: config.user_template.clone(),
        })
    }

    fn messages(&self, input: &str, target: Option<&str>) -> Vec<ChatMessage> {
        let system = self
            .system
            .as_ref()
            .map(|s| ChatMessage::new("system", s.as_str()));
        let user = ChatMessage::new("user", self.user_template.replace("{dialogue}", input));
        let assistant = target.map(|t| ChatMessage::new("assistant", t));
        system.into_iter().chain([user]).chain(assistant).collect()
    }

    fn render_prompt(&self, input: &str) -> Result<String, TokenizerError> {
        self.template.render(&self.messages(input, None), true)
    }

    /// The prompt text for generating this row's summary: `[system?, user]` rendered with the
    /// generation prompt.
    pub fn eval_prompt(&self, row: &Row) -> Result<String, PromptError> {
        self.render_prompt(&row.input)
            .map_err(|source| PromptError::Tokenizer {
                location: row.location,
                source,
            })
    }

    /// Builds the sample of one row, applying the length limit and the truncation policy.
    pub fn sample(
        &self,
        row: &Row,
        max_len: usize,
        truncation: Truncation,
    ) -> Result<Outcome, PromptError> {
        let location = row.location;
        let tok_err = |source| PromptError::Tokenizer { location, source };
        let prompt_text = self.render_prompt(&row.input).map_err(tok_err)?;
        let target = self.target_ids(row, &prompt_text)?;
        let prompt = self.tokenizer.encode(&prompt_text).map_err(tok_err)?;
        let len = prompt.len() + target.len();
        if len <= max_len {
            return Ok(Outcome::Fits(Sample::join(prompt, &target)));
        }
        if truncation == Truncation::Drop {
            return Ok(Outcome::Dropped { len });
        }

        // The prompt's length grows with the input's; find the longest prefix (in characters)
        // with which prompt + target fit.
        let chars: Vec<usize> = row
            .input
            .char_indices()
            .map(|(i, _)| i)
            .chain([row.input.len()])
            .collect();
        let fitting_prompt = |kept: usize| -> Result<Option<Vec<u32>>, PromptError> {
            let text = self
                .render_prompt(&row.input[..chars[kept]])
                .map_err(tok_err)?;
            let ids = self.tokenizer.encode(&text).map_err(tok_err)?;
            Ok((ids.len() + target.len() <= max_len).then_some(ids))
        };
        let Some(mut best) = fitting_prompt(0)? else {
            return Ok(Outcome::Dropped { len });
        };
        let input_chars = chars.len() - 1;
        let (mut fits, mut too_long) = (0, input_chars);
        while too_long - fits > 1 {
            let mid = fits + (too_long - fits) / 2;
            match fitting_prompt(mid)? {
                Some(ids) => (fits, best) = (mid, ids),
                None => too_long = mid,
            }
        }
        Ok(Outcome::Truncated {
            sample: Sample::join(best, &target),
            kept_chars: fits,
            input_chars,
        })
    }

    /// The tokens of the assistant turn: what the full conversation adds after the prompt, up to
    /// and including the first stop token.
    fn target_ids(&self, row: &Row, prompt_text: &str) -> Result<Vec<u32>, PromptError> {
        let location = row.location;
        let tok_err = |source| PromptError::Tokenizer { location, source };
        if let Some(&stop) = self
            .tokenizer
            .encode(&row.target)
            .map_err(tok_err)?
            .iter()
            .find(|&&id| self.tokenizer.is_stop(id))
        {
            let token = self
                .tokenizer
                .id_to_token(stop)
                .unwrap_or_else(|| stop.to_string());
            return Err(PromptError::StopInTarget { location, token });
        }
        let full = self
            .template
            .render(&self.messages(&row.input, Some(&row.target)), false)
            .map_err(tok_err)?;
        let rest = full
            .strip_prefix(prompt_text)
            .ok_or(PromptError::NotAPrefix { location })?;
        if !rest.contains(row.target.trim()) {
            return Err(PromptError::TargetNotRendered { location });
        }
        let mut ids = self.tokenizer.encode(rest).map_err(tok_err)?;
        match ids.iter().position(|&id| self.tokenizer.is_stop(id)) {
            Some(end) => ids.truncate(end + 1),
            None => ids.push(self.tokenizer.eos_id()),
        }
        Ok(ids)
    }

    /// Builds the samples of `rows` in order (in parallel), with their statistics.
    pub fn samples(
        &self,
        rows: &[Row],
        max_len: usize,
        truncation: Truncation,
    ) -> Result<(Vec<Sample>, SampleStats), PromptError> {
        let outcomes: Vec<Outcome> = rows
            .par_iter()
            .map(|row| self.sample(row, max_len, truncation))
            .collect::<Result<_, _>>()?;
        let mut stats = SampleStats {
            rows: rows.len(),
            max_seq_length: max_len,
            ..Default::default()
        };
        let mut samples = Vec::with_capacity(rows.len());
        for (row, outcome) in rows.iter().zip(outcomes) {
            match outcome {
                Outcome::Fits(sample) => samples.push(sample),
                Outcome::Truncated { sample, .. } => {
                    stats.truncated += 1;
                    samples.push(sample);
                }
                Outcome::Dropped { .. } => {
                    stats.dropped += 1;
                    stats.dropped_rows.push(row.location);
                }
            }
        }
        stats.kept = samples.len();
        stats.longest = samples.iter().map(Sample::len).max().unwrap_or(0);
        stats.target_tokens = samples.iter().map(|s| s.target().len()).sum();
        if !samples.is_empty() {
            stats.mean_len =
                samples.iter().map(Sample::len).sum::<usize>() as f64 / samples.len() as f64;
        }
        Ok((samples, stats))
    }
}
