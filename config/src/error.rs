//! Errors that point at the file, the field and what is allowed.

use std::path::PathBuf;

/// A config that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", file.display())]
    Io {
        /// The config file.
        file: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The text is not valid YAML / JSON.
    #[error("{}: not valid YAML: {message}", file.display())]
    Syntax {
        /// The config file.
        file: PathBuf,
        /// Parser message, with line and column.
        message: String,
    },
    /// A field has a wrong type, an unknown name, or a value outside what is allowed.
    #[error("{}: field `{field}`: {message}", file.display())]
    Field {
        /// The config file.
        file: PathBuf,
        /// Dotted path of the field, e.g. `training.learning_rate`.
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A `--set key=value` override that cannot be applied.
    #[error("--set {given}: {message}")]
    Override {
        /// The override as given.
        given: String,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// The dotted field path for field errors.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Field { field, .. } => Some(field),
            _ => None,
        }
    }
}
