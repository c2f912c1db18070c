//! Hugging Face tokenizer directories: reading `tokenizer.json` with `tokenizer_config.json`
//! (and `chat_template.jinja`, `generation_config.json`, `config.json` when present), and
//! writing a directory that transformers' `AutoTokenizer.from_pretrained` loads.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value, json};

use super::{SpecialTokens, Tokenizer, TokenizerError};

/// Above this, `model_max_length` is transformers' "no limit" placeholder (about 1e30).
const UNBOUNDED_LENGTH: f64 = 1e15;

impl Tokenizer {
    /// Loads `dir/tokenizer.json` and `dir/tokenizer_config.json` (special tokens as strings or
    /// AddedToken objects; `chat_template` as a string or a list of named templates, of which
    /// `default` is used; `dir/chat_template.jinja` takes precedence). The eos ids listed in
    /// `generation_config.json` and `config.json` become stop ids too.
    pub fn from_hf_dir(dir: &Path) -> Result<Self, TokenizerError> {
        let tokenizer_path = dir.join("tokenizer.json");
        if !tokenizer_path.is_file() {
            return Err(invalid(dir, "has no tokenizer.json"));
        }
        let inner = tokenizers::Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| invalid(&tokenizer_path, e))?;
        let config_path = dir.join("tokenizer_config.json");
        let config = read_json(&config_path)?.unwrap_or_else(|| json!({}));
        let mut special = SpecialTokens {
            bos: token_field(&config, "bos_token", &config_path)?,
            eos: token_field(&config, "eos_token", &config_path)?,
            unk: token_field(&config, "unk_token", &config_path)?,
            pad: token_field(&config, "pad_token", &config_path)?,
        };
        let jinja_path = dir.join("chat_template.jinja");
        let template = match read_text(&jinja_path)? {
            Some(text) => Some(text),
            None => chat_template_field(&config, &config_path)?,
        };

        let mut eos_ids = Vec::new();
        let mut max_positions = None;
        for name in ["generation_config.json", "config.json"] {
            let path = dir.join(name);
            if let Some(value) = read_json(&path)? {
                eos_ids.extend(id_list(&value, "eos_token_id", &path)?);
                if let Some(n) = value.get("max_position_embeddings").and_then(Value::as_u64) {
                    max_positions = Some(n as usize);
                }
            }
        }
        if special.eos.is_none() {
            special.eos = eos_ids.first().and_then(|&id| inner.id_to_token(id));
        }
        let model_max_length = match config.get("model_max_length").and_then(Value::as_f64) {
            Some(n) if (1.0..UNBOUNDED_LENGTH).contains(&n) => Some(n as usize),
            _ => max_positions,
        };
        let origin = config_path.display().to_string();
        Tokenizer::assemble(
            inner,
            special,
            &eos_ids,
            model_max_length,
            template.as_deref(),
            &origin,
        )
    }

    /// Writes `tokenizer.json`, `tokenizer_config.json` (special tokens, added tokens, chat
    /// template, model_max_length) and `special_tokens_map.json` into `dir`, creating it.
    pub fn save_hf(&self, dir: &Path) -> Result<(), TokenizerError> {
        std::fs::create_dir_all(dir).map_err(|source| TokenizerError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let tokenizer_path = dir.join("tokenizer.json");
        self.inner
            .save(&tokenizer_path, false)
            .map_err(|e| invalid(&tokenizer_path, e))?;

        let added: BTreeMap<u32, Value> = self
            .inner
            .get_added_tokens_decoder()
            .into_iter()
            .map(|(id, t)| {
                let entry = json!({
                    "content": t.content,
                    "lstrip": t.lstrip,
                    "normalized": t.normalized,
                    "rstrip": t.rstrip,
                    "single_word": t.single_word,
                    "special": t.special,
                });
                (id, entry)
            })
            .collect();
        let special_map = self.special_tokens_json();
        let mut config = Map::new();
        config.insert("add_bos_token".into(), false.into());
        config.insert("add_eos_token".into(), false.into());
        config.insert(
            "added_tokens_decoder".into(),
            Value::Object(
                added
                    .into_iter()
                    .map(|(id, v)| (id.to_string(), v))
                    .collect(),
            ),
        );
        config.extend(special_map.clone());
        if let Some(template) = &self.chat_template {
            config.insert("chat_template".into(), template.source().into());
        }
        config.insert("clean_up_tokenization_spaces".into(), false.into());
        if let Some(n) = self.model_max_length {
            config.insert("model_max_length".into(), n.into());
        }
        config.insert("tokenizer_class".into(), "PreTrainedTokenizerFast".into());
        write_json(&dir.join("tokenizer_config.json"), &Value::Object(config))?;
        write_json(
            &dir.join("special_tokens_map.json"),
            &Value::Object(special_map),
        )
    }

    fn special_tokens_json(&self) -> Map<String, Value> {
        let s = &self.special;
        [
            ("bos_token", &s.bos),
            ("eos_token", &s.eos),
            ("pad_token", &s.pad),
            ("unk_token", &s.unk),
        ]
        .into_iter()
        .filter_map(|(name, token)| {
            token
                .as_ref()
                .map(|t| (name.to_owned(), Value::from(t.as_str())))
        })
        .collect()
    }
}

fn invalid(path: &Path, message: impl ToString) -> TokenizerError {
    TokenizerError::Invalid {
        origin: path.display().to_string(),
        message: message.to_string(),
    }
}

fn read_text(path: &Path) -> Result<Option<String>, TokenizerError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn read_json(path: &Path) -> Result<Option<Value>, TokenizerError> {
    read_text(path)?
        .map(|text| {
            serde_json::from_str(&text).map_err(|e| invalid(path, format!("invalid JSON: {e}")))
        })
        .transpose()
}

fn write_json(path: &Path, value: &Value) -> Result<(), TokenizerError> {
    let text = serde_json::to_string_pretty(value).expect("a JSON value always serialises");
    std::fs::write(path, text + "\n").map_err(|source| TokenizerError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A special token written as a string or as an AddedToken object (`{"content": ...}`).
fn token_field(config: &Value, field: &str, path: &Path) -> Result<Option<String>, TokenizerError> {
    match config.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Object(o)) if o.get("content").is_some_and(Value::is_string) => {
            Ok(o["content"].as_str().map(str::to_owned))
        }
        Some(other) => Err(invalid(
            path,
            format!(
                "`{field}` must be a string or an object with a `content` string, found {other}"
            ),
        )),
    }
}

/// `chat_template` as a string, or as a list of `{name, template}` of which `default` is used.
fn chat_template_field(config: &Value, path: &Path) -> Result<Option<String>, TokenizerError> {
    match config.get("chat_template") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Array(list)) => {
            let named: Vec<(&str, &str)> = list
                .iter()
                .filter_map(|entry| {
                    Some((
                        entry.get("name")?.as_str()?,
                        entry.get("template")?.as_str()?,
                    ))
                })
                .collect();
            if named.len() != list.len() {
                return Err(invalid(
                    path,
                    "every entry of `chat_template` must have a `name` and a `template` string",
                ));
            }
            match named.iter().find(|(name, _)| *name == "default") {
                Some((_, template)) => Ok(Some((*template).to_owned())),
                None => {
                    let names: Vec<&str> = named.iter().map(|(name, _)| *name).collect();
                    Err(invalid(
                        path,
                        format!(
                            "`chat_template` lists no template named `default` (it has: {})",
                            names.join(", ")
                        ),
                    ))
                }
            }
        }
        Some(other) => Err(invalid(
            path,
            format!("`chat_template` must be a string or a list of named templates, found {other}"),
        )),
    }
}

/// `field` as one id or a list of ids (absent or null: none).
fn id_list(value: &Value, field: &str, path: &Path) -> Result<Vec<u32>, TokenizerError> {
    let bad = || {
        invalid(
            path,
            format!("`{field}` must be a token id or a list of token ids"),
        )
    };
    let as_id = |v: &Value| {
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(bad)
    };
    match value.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(as_id).collect(),
        Some(single) => Ok(vec![as_id(single)?]),
    }
}
