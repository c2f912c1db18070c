//! Building a [`Tokenizer`] from GGUF metadata, under llama.cpp's key names.
//!
//! Only byte-level BPE (`tokenizer.ggml.model = gpt2`) is supported, with the pre-tokenizers of
//! SmolLM2 (`smollm`: every digit split off, then GPT-2's byte-level split) and Llama 3
//! (`llama-bpe`: Llama 3's split pattern, and a pre-token found whole in the vocabulary is taken
//! whole). Control tokens (token type 3) are special tokens matched in text; user-defined tokens
//! (type 4) are matched whole too but are not special.

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior};

use super::{SpecialTokens, Tokenizer, TokenizerError, library_error};

/// The `tokenizer.ggml.pre` values we implement.
pub(super) const SUPPORTED_PRE: [&str; 4] = ["smollm", "llama-bpe", "llama3", "llama-v3"];

/// Llama 3's pre-tokenizer split pattern.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// llama.cpp's token types.
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

const ORIGIN: &str = "GGUF tokenizer metadata";

impl Tokenizer {
    /// Builds the tokenizer a GGUF file describes (read it with `gguf_file::Content::read`).
    pub fn from_gguf(content: &Content) -> Result<Self, TokenizerError> {
        let meta = Metadata(content);
        let model = meta.string("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(TokenizerError::UnsupportedModel {
                model: model.to_owned(),
            });
        }
        if !content.metadata.contains_key("tokenizer.ggml.pre") {
            return Err(gguf_error(
                "tokenizer.ggml.pre",
                format!(
                    "is missing: it names the pre-tokenizer, one of {}",
                    SUPPORTED_PRE.join(", ")
                ),
            ));
        }
        let pre = meta.string("tokenizer.ggml.pre")?;
        let (pre_tokenizer, ignore_merges) = match pre {
            "smollm" => (
                Sequence::new(vec![
                    PreTokenizerWrapper::Digits(Digits::new(true)),
                    PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
                ]),
                false,
            ),
            "llama-bpe" | "llama3" | "llama-v3" => {
                let split = Split::new(
                    SplitPattern::Regex(LLAMA3_SPLIT.into()),
                    SplitDelimiterBehavior::Isolated,
                    false,
                )
                .map_err(library_error)?;
                (
                    Sequence::new(vec![
                        PreTokenizerWrapper::Split(split),
                        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, false)),
                    ]),
                    true,
                )
            }
            other => {
                return Err(TokenizerError::UnsupportedPreTokenizer {
                    pre: other.to_owned(),
                });
            }
        };

        let tokens = meta.strings("tokenizer.ggml.tokens")?;
        let types = match content.metadata.get("tokenizer.ggml.token_type") {
            Some(value) => meta.integers("tokenizer.ggml.token_type", value)?,
            None => vec![1; tokens.len()],
        };
        if types.len() != tokens.len() {
            return Err(gguf_error(
                "tokenizer.ggml.token_type",
                format!("has {} entries for {} tokens", types.len(), tokens.len()),
            ));
        }
        let merges = meta
            .strings("tokenizer.ggml.merges")?
            .into_iter()
            .map(|merge| {
                merge
                    .split_once(' ')
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                    .ok_or_else(|| {
                        gguf_error(
                            "tokenizer.ggml.merges",
                            format!("entry `{merge}` is not two tokens"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(id, token)| (token.to_string(), id as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .ignore_merges(ignore_merges)
            .build()
            .map_err(|e| gguf_error("tokenizer.ggml.merges", e.to_string()))?;

        let mut inner = tokenizers::Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(pre_tokenizer));
        inner.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::default())));
        let added = |wanted: i64, special: bool| {
            tokens
                .iter()
                .zip(&types)
                .filter(move |&(_, &kind)| kind == wanted)
                .map(move |(token, _)| {
                    AddedToken::from(token.to_string(), special).normalized(false)
                })
        };
        inner
            .add_special_tokens(added(CONTROL, true))
            .map_err(library_error)?;
        inner
            .add_tokens(added(USER_DEFINED, false))
            .map_err(library_error)?;

        let token_at = |key: &str| -> Result<Option<String>, TokenizerError> {
            let Some(id) = meta.optional_id(key)? else {
                return Ok(None);
            };
            tokens
                .get(id as usize)
                .map(|t| Some(t.to_string()))
                .ok_or_else(|| {
                    gguf_error(
                        key,
                        format!(
                            "id {id} is outside the vocabulary ({} tokens)",
                            tokens.len()
                        ),
                    )
                })
        };
        let special = SpecialTokens {
            bos: token_at("tokenizer.ggml.bos_token_id")?,
            eos: token_at("tokenizer.ggml.eos_token_id")?,
            unk: token_at("tokenizer.ggml.unknown_token_id")?,
            pad: token_at("tokenizer.ggml.padding_token_id")?,
        };
        let extra_stop_ids: Vec<u32> =
            ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"]
                .into_iter()
                .map(|key| meta.optional_id(key))
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .flatten()
                .collect();
        let context_length = match content.metadata.get("general.architecture") {
            Some(Value::String(arch)) => meta
                .optional_id(&format!("{arch}.context_length"))?
                .map(|n| n as usize),
            _ => None,
        };
        let template = match content.metadata.get("tokenizer.chat_template") {
            Some(_) => Some(meta.string("tokenizer.chat_template")?),
            None => None,
        };
        Tokenizer::assemble(
            inner,
            special,
            &extra_stop_ids,
            context_length,
            template,
            ORIGIN,
        )
    }
}

fn gguf_error(key: &str, message: impl Into<String>) -> TokenizerError {
    TokenizerError::Gguf {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// Typed access to GGUF metadata with errors that name the key.
struct Metadata<'a>(&'a Content);

impl<'a> Metadata<'a> {
    fn get(&self, key: &str) -> Result<&'a Value, TokenizerError> {
        self.0
            .metadata
            .get(key)
            .ok_or_else(|| gguf_error(key, "is missing"))
    }

    fn string(&self, key: &str) -> Result<&'a str, TokenizerError> {
        match self.get(key)? {
            Value::String(s) => Ok(s),
            other => Err(gguf_error(
                key,
                format!("must be a string, found {:?}", other.value_type()),
            )),
        }
    }

    fn strings(&self, key: &str) -> Result<Vec<&'a str>, TokenizerError> {
        match self.get(key)? {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(s.as_str()),
                    other => Err(gguf_error(
                        key,
                        format!("entry {i} must be a string, found {:?}", other.value_type()),
                    )),
                })
                .collect(),
            other => Err(gguf_error(
                key,
                format!(
                    "must be an array of strings, found {:?}",
                    other.value_type()
                ),
            )),
        }
    }

    fn integers(&self, key: &str, value: &Value) -> Result<Vec<i64>, TokenizerError> {
        match value {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    integer(item)
                        .ok_or_else(|| gguf_error(key, format!("entry {i} is not an integer")))
                })
                .collect(),
            other => Err(gguf_error(
                key,
                format!(
                    "must be an array of integers, found {:?}",
                    other.value_type()
                ),
            )),
        }
    }

    /// A non-negative integer that may be absent.
    fn optional_id(&self, key: &str) -> Result<Option<u32>, TokenizerError> {
        let Some(value) = self.0.metadata.get(key) else {
            return Ok(None);
        };
        integer(value)
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                gguf_error(
                    key,
                    format!("must be a non-negative integer, found {value:?}"),
                )
            })
    }
}

fn integer(value: &Value) -> Option<i64> {
    match *value {
        Value::U8(n) => Some(n.into()),
        Value::I8(n) => Some(n.into()),
        Value::U16(n) => Some(n.into()),
        Value::I16(n) => Some(n.into()),
        Value::U32(n) => Some(n.into()),
        Value::I32(n) => Some(n.into()),
        Value::U64(n) => i64::try_from(n).ok(),
        Value::I64(n) => Some(n),
        _ => None,
    }
}
