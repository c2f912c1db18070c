//! Tokenizers (tokenizer.json or GGUF metadata) and chat-template rendering.
//!
//! [`Tokenizer`] wraps a Hugging Face `tokenizers` pipeline with what training and generation
//! need besides ids: the special tokens, the ids that end a turn, and the model's chat template.

mod chat_template;
mod gguf;
mod hf;

use std::collections::BTreeSet;
use std::path::PathBuf;

pub use chat_template::{ChatMessage, ChatTemplate};

/// Tokens that end a turn or a document. Any of them present as a special token stops generation.
const END_OF_TURN: [&str; 7] = [
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end_of_text|>",
    "<|endoftext|>",
    "<end_of_turn>",
    "<|end|>",
];

/// Errors from building a tokenizer, encoding, decoding or rendering a chat.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A GGUF metadata key is missing or has the wrong type.
    #[error("GGUF metadata `{key}`: {message}")]
    Gguf { key: String, message: String },
    /// The GGUF describes a tokenizer other than byte-level BPE.
    #[error("GGUF `tokenizer.ggml.model` is `{model}`: only `gpt2` (byte-level BPE) is supported")]
    UnsupportedModel { model: String },
    /// The GGUF names a pre-tokenizer we do not implement.
    #[error("GGUF `tokenizer.ggml.pre` is `{pre}`: supported are {}", gguf::SUPPORTED_PRE.join(", "))]
    UnsupportedPreTokenizer { pre: String },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A tokenizer file (or the GGUF metadata) is malformed or lacks what is needed.
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
    /// The `tokenizers` library rejected the vocabulary or the input.
    #[error("tokenizer: {0}")]
    Library(String),
    /// A chat was rendered but there is no template.
    #[error("the model has no chat template: set `prompt.chat_template` in the config")]
    NoChatTemplate,
    /// The chat template failed to compile or render.
    #[error("chat template: {0}")]
    Template(String),
    /// `decode` was given an id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary ({size} tokens)")]
    UnknownId { id: u32, size: usize },
}

fn library_error(err: tokenizers::Error) -> TokenizerError {
    TokenizerError::Library(err.to_string())
}

/// The named special tokens as text (transformers' `special_tokens_map`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    /// Beginning of sequence.
    pub bos: Option<String>,
    /// End of sequence.
    pub eos: Option<String>,
    /// Unknown token.
    pub unk: Option<String>,
    /// Padding.
    pub pad: Option<String>,
}

/// A tokenizer with its special tokens and chat template.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    special: SpecialTokens,
    eos_id: u32,
    pad_id: u32,
    stop_ids: Vec<u32>,
    model_max_length: Option<usize>,
    chat_template: Option<ChatTemplate>,
}

impl Tokenizer {
    /// Completes a tokenizer from its parts: resolves the eos and pad ids and collects the stop
    /// ids (eos, `extra_stop_ids`, and every end-of-turn token the vocabulary has as special).
    fn assemble(
        inner: tokenizers::Tokenizer,
        special: SpecialTokens,
        extra_stop_ids: &[u32],
        model_max_length: Option<usize>,
        chat_template: Option<&str>,
        origin: &str,
    ) -> Result<Self, TokenizerError> {
        let invalid = |message: String| TokenizerError::Invalid {
            origin: origin.to_owned(),
            message,
        };
        let id_of = |what: &str, token: &str| {
            inner.token_to_id(token).ok_or_else(|| {
                invalid(format!(
                    "the {what} token `{token}` is not in the vocabulary"
                ))
            })
        };
        let eos = special
            .eos
            .as_deref()
            .ok_or_else(|| invalid("no end-of-sequence (eos) token".into()))?;
        let eos_id = id_of("eos", eos)?;
        let pad_id = match &special.pad {
            Some(pad) => id_of("pad", pad)?,
            None => eos_id,
        };
        let size = inner.get_vocab_size(true);
        if let Some(&bad) = extra_stop_ids.iter().find(|&&id| id as usize >= size) {
            return Err(invalid(format!(
                "eos_token_id {bad} is outside the vocabulary ({size} tokens)"
            )));
        }
        let special_ids: BTreeSet<u32> = inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, token)| token.special && END_OF_TURN.contains(&token.content.as_str()))
            .map(|(id, _)| id)
            .collect();
        let mut stop_ids: BTreeSet<u32> = special_ids;
        stop_ids.insert(eos_id);
        stop_ids.extend(extra_stop_ids);
        let chat_template = chat_template
            .map(|source| ChatTemplate::new(source, &special))
            .transpose()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            inner,
            special,
            eos_id,
            pad_id,
            stop_ids: stop_ids.into_iter().collect(),
            model_max_length,
            chat_template,
        })
    }

    /// Token ids of `text`. No BOS or EOS is added (chat templates write them); special tokens
    /// written in the text, such as `<|im_start|>`, become their ids.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        Ok(self
            .inner
            .encode_fast(text, false)
            .map_err(library_error)?
            .get_ids()
            .to_vec())
    }

    /// The text of `ids`, leaving out special tokens.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        let size = self.vocab_size();
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= size) {
            return Err(TokenizerError::UnknownId { id, size });
        }
        self.inner.decode(ids, true).map_err(library_error)
    }

    /// Ids that end generation: eos and the end-of-turn tokens (sorted).
    pub fn stop_ids(&self) -> &[u32] {
        &self.stop_ids
    }

    /// Whether `id` ends generation.
    pub fn is_stop(&self, id: u32) -> bool {
        self.stop_ids.binary_search(&id).is_ok()
    }

    /// The padding id: the pad token, else eos.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The end-of-sequence id.
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// Number of ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of one token (as written in the vocabulary or as an added token).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The text of one token id (as the vocabulary spells it).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The beginning-of-sequence token's text, when the model has one.
    pub fn bos_token(&self) -> Option<&str> {
        self.special.bos.as_deref()
    }

    /// The end-of-sequence token's text.
    pub fn eos_token(&self) -> &str {
        self.special
            .eos
            .as_deref()
            .expect("a tokenizer is only built with an eos token")
    }

    /// The named special tokens.
    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    /// The longest input the model was built for, when known.
    pub fn model_max_length(&self) -> Option<usize> {
        self.model_max_length
    }

    /// The chat template, or [`TokenizerError::NoChatTemplate`].
    pub fn chat_template(&self) -> Result<&ChatTemplate, TokenizerError> {
        self.chat_template
            .as_ref()
            .ok_or(TokenizerError::NoChatTemplate)
    }

    /// Compiles `source` as a chat template with this tokenizer's special tokens, without
    /// installing it.
    pub fn compile_chat_template(&self, source: &str) -> Result<ChatTemplate, TokenizerError> {
        ChatTemplate::new(source, &self.special)
    }

    /// Replaces the model's chat template (the config's `prompt.chat_template`).
    pub fn set_chat_template(&mut self, source: &str) -> Result<(), TokenizerError> {
        self.chat_template = Some(self.compile_chat_template(source)?);
        Ok(())
    }

    /// Renders a conversation with the chat template, as transformers' `apply_chat_template`
    /// does with `tokenize=False`.
    pub fn render_chat(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, TokenizerError> {
        self.chat_template()?
            .render(messages, add_generation_prompt)
    }

    /// See [`ChatTemplate::set_date_string`]; no effect without a template.
    pub fn set_date_string(&mut self, date: Option<String>) {
        if let Some(template) = &mut self.chat_template {
            template.set_date_string(date);
        }
    }
}
