//! The ferrotune configuration: one schema (serde + schemars) for the trainer's YAML config and
//! the `spec.training` block of a TrainingJob, with loading, `--set` overrides and validation
//! that names the file, the field and what is allowed.

pub mod error;
pub mod load;
pub mod migrate;
pub mod paths;
pub mod progress;
pub mod schema;
pub mod validate;

pub use error::ConfigError;
pub use schema::*;
