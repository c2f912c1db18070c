//! Reading a TrainingJob manifest file as the operator's `render` does: YAML, the resource's
//! `apiVersion` and `kind`, its schema (unknown fields are errors), then the spec's rules, each
//! error naming the file, the field and what is allowed.

use std::path::{Path, PathBuf};

use ferrotune_config::ConfigError;
use ferrotune_config::load::{TOP_LEVEL, deserialize, parse_yaml};
use kube::Resource;
use serde_json::Value;

use crate::{Invalid, TrainingJob};

/// Why a manifest cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Unreadable, not YAML, not a TrainingJob, or a field that does not fit the schema.
    #[error(transparent)]
    Parse(#[from] ConfigError),
    /// The manifest parses but breaks rules the schema cannot express.
    #[error("{}: invalid TrainingJob:{}", file.display(), problems.iter().map(|p| format!("\n  {p}")).collect::<String>())]
    Invalid {
        /// The manifest.
        file: PathBuf,
        /// Every rule it breaks.
        problems: Vec<Invalid>,
    },
}

/// Reads and checks the TrainingJob manifest at `path`.
pub fn load(path: &Path) -> Result<TrainingJob, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        file: path.to_path_buf(),
        source,
    })?;
    let value = parse_yaml(&text, path)?;
    let field_error = |field: &str, message: String| ConfigError::Field {
        file: path.to_path_buf(),
        field: field.into(),
        message,
    };
    if !value.is_object() {
        return Err(field_error(
            TOP_LEVEL,
            "expected a TrainingJob: a mapping with apiVersion, kind, metadata and spec".into(),
        )
        .into());
    }
    for (field, want) in [
        ("apiVersion", TrainingJob::api_version(&())),
        ("kind", TrainingJob::kind(&())),
    ] {
        let found = value.get(field);
        if found.and_then(Value::as_str) != Some(&want) {
            let found = found.map_or("nothing".into(), Value::to_string);
            return Err(field_error(field, format!("must be `{want}`, found {found}")).into());
        }
    }
    let job: TrainingJob = deserialize(value).map_err(|p| field_error(&p.field, p.message))?;
    let mut problems = job.spec.problems();
    if job.metadata.name.as_deref().is_none_or(str::is_empty) {
        problems.insert(
            0,
            Invalid {
                field: "metadata.name".into(),
                message: "must be set: it names the job's Service, ConfigMap and pods".into(),
            },
        );
    }
    if problems.is_empty() {
        Ok(job)
    } else {
        Err(ManifestError::Invalid {
            file: path.to_path_buf(),
            problems,
        })
    }
}
