//! Reading a config file, applying `--set key=value` overrides, and validating.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::validate::Problem;
use crate::{Config, ConfigError};

impl Config {
    /// Reads a YAML (or JSON) config file, applies `key.path=value` overrides in order, and
    /// validates the result.
    pub fn load(file: &Path, overrides: &[String]) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Io {
            file: file.to_path_buf(),
            source,
        })?;
        Self::from_yaml(&text, file, overrides)
    }

    /// Parses config text; `origin` names it in errors.
    pub fn from_yaml(
        text: &str,
        origin: &Path,
        overrides: &[String],
    ) -> Result<Config, ConfigError> {
        let mut value = parse_yaml(text, origin)?;
        if value.is_null() {
            value = Value::Object(Default::default());
        }
        for given in overrides {
            apply_override(&mut value, given)?;
        }
        Self::from_value(value, origin)
    }

    /// Deserialises and validates an already-parsed document (e.g. a TrainingJob's
    /// `spec.training`); `origin` names it in errors.
    pub fn from_value(value: Value, origin: &Path) -> Result<Config, ConfigError> {
        let field_error = |p: Problem| ConfigError::Field {
            file: origin.to_path_buf(),
            field: p.field,
            message: p.message,
        };
        let config: Config = deserialize(value).map_err(field_error)?;
        config.validate().map_err(field_error)?;
        Ok(config)
    }

    /// The config as YAML, every default written out.
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).expect("a Config always serialises")
    }
}

/// Parses YAML (or JSON) text; `origin` names it in errors. The message is one line giving the
/// line and column, worded for the person who wrote the file.
pub fn parse_yaml(text: &str, origin: &Path) -> Result<Value, ConfigError> {
    serde_saphyr::from_str(text).map_err(|e| ConfigError::Syntax {
        file: origin.to_path_buf(),
        message: e.render_with_options(serde_saphyr::render_options! {
            formatter: &serde_saphyr::UserMessageFormatter,
            snippets: serde_saphyr::SnippetMode::Off,
        }),
    })
}

/// The field name of errors about the document as a whole.
pub const TOP_LEVEL: &str = "(top level)";

/// Deserialises a parsed document into `T`. A value that does not fit is reported with the dotted
/// path of its field ([`TOP_LEVEL`] for the document itself) and what the field takes, in words
/// rather than Rust's type names (`expected a whole number >= 0`, not `expected u64`).
pub fn deserialize<T: DeserializeOwned>(value: Value) -> Result<T, Problem> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        Problem {
            field: if path == "." { TOP_LEVEL.into() } else { path },
            message: plain_expected(&e.into_inner().to_string()),
        }
    })
}

/// serde's `expected u64`, `expected f64`, `expected struct X`, ... as words.
fn plain_expected(message: &str) -> String {
    let Some((head, expected)) = message.rsplit_once(", expected ") else {
        return message.to_string();
    };
    let words = match expected {
        "u8" => "a whole number in 0..=255",
        "u16" => "a whole number in 0..=65535",
        "u32" => "a whole number in 0..=4294967295",
        "u64" | "usize" => "a whole number >= 0",
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "a boolean" => "true or false",
        e if e.starts_with("struct ") || e.starts_with("a map") => "a mapping of keys to values",
        e if e.starts_with("a sequence") => "a list",
        _ => return message.to_string(),
    };
    format!("{head}, expected {words}")
}

/// Sets `a.b.c` in `doc` to `value` (parsed as YAML, so `1e-4`, `true` and `[q_proj, v_proj]`
/// keep their types), creating missing sections.
pub fn apply_override(doc: &mut Value, given: &str) -> Result<(), ConfigError> {
    let err = |message: &str| ConfigError::Override {
        given: given.into(),
        message: message.into(),
    };
    let (key, raw) = given
        .split_once('=')
        .ok_or_else(|| err("expected key=value, e.g. training.learning_rate=1e-4"))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(err(
            "the key must be a dotted path such as training.max_steps",
        ));
    }
    let parsed: Value = if raw.trim().is_empty() {
        Value::String(String::new())
    } else {
        serde_saphyr::from_str(raw).map_err(|e| err(&format!("value is not valid YAML: {e}")))?
    };
    let mut node = doc;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let Value::Object(map) = node else {
            return Err(err(&format!("`{}` is not a section", parts[..i].join("."))));
        };
        if i + 1 == parts.len() {
            map.insert((*part).to_string(), parsed);
            return Ok(());
        }
        node = map
            .entry((*part).to_string())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    unreachable!("a key has at least one part")
}
