//! Running Axolotl, accelerate and DeepSpeed configs as they are: a pure mapping from those
//! tools' files onto ferrotune's [`Config`], with a [`Report`] of what mapped to what, what was
//! recognised but cannot be honoured (and why), and which keys the tool itself would not know.
//!
//! The world size is not part of a ferrotune config (it comes from WORLD_SIZE / NODE_RANK /
//! NPROC_PER_NODE, as torchrun sets them), so the launch shape found in an accelerate config is
//! returned beside the config as a [`LaunchShape`].

pub mod accelerate;
pub mod axolotl;
pub mod deepspeed;

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::{Config, ConfigError};

/// The tool a file was written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A ferrotune config (`model`, `data`, `training`, ... sections).
    Ferrotune,
    /// An Axolotl training config.
    Axolotl,
    /// An accelerate launch config (`accelerate config` writes one).
    Accelerate,
    /// A DeepSpeed JSON config.
    DeepSpeed,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ferrotune => "ferrotune",
            Self::Axolotl => "Axolotl",
            Self::Accelerate => "accelerate",
            Self::DeepSpeed => "DeepSpeed",
        })
    }
}

/// The sections of a ferrotune config.
const FERROTUNE_SECTIONS: [&str; 8] = [
    "model",
    "data",
    "prompt",
    "lora",
    "training",
    "distributed",
    "eval",
    "output",
];

/// Keys that only an Axolotl config has at its top level.
const AXOLOTL_SIGNATURE: [&str; 12] = [
    "base_model",
    "datasets",
    "adapter",
    "micro_batch_size",
    "sequence_len",
    "num_epochs",
    "lora_r",
    "load_in_4bit",
    "load_in_8bit",
    "val_set_size",
    "lora_target_modules",
    "lora_target_linear",
];

/// Tells which tool a parsed file belongs to, from its keys (never from the file name).
pub fn detect(doc: &Value) -> Kind {
    let Some(map) = doc.as_object() else {
        return Kind::Ferrotune;
    };
    let has = |k: &str| map.contains_key(k);
    if map.keys().all(|k| FERROTUNE_SECTIONS.contains(&k.as_str())) {
        return Kind::Ferrotune;
    }
    if AXOLOTL_SIGNATURE.iter().any(|k| has(k)) {
        return Kind::Axolotl;
    }
    if has("zero_optimization")
        || has("train_micro_batch_size_per_gpu")
        || has("train_batch_size")
        || (has("zero_allow_untested_optimizer"))
    {
        return Kind::DeepSpeed;
    }
    if has("distributed_type") || has("compute_environment") || has("num_processes") {
        return Kind::Accelerate;
    }
    Kind::Ferrotune
}

/// A key that became a ferrotune setting.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// The file it came from.
    pub file: PathBuf,
    /// Dotted key in that file, e.g. `datasets[0].path`.
    pub key: String,
    /// The ferrotune setting it became, e.g. `training.max_seq_length = 512`.
    pub to: String,
}

/// A key that is recognised and needs nothing in ferrotune: unset, ferrotune's fixed behaviour
/// already, or an implementation choice that does not change what is trained.
#[derive(Debug, Clone, PartialEq)]
pub struct Ignored {
    /// The file it came from.
    pub file: PathBuf,
    /// Dotted key in that file.
    pub key: String,
    /// Why nothing is needed.
    pub reason: String,
}

/// A key the tool knows that ferrotune cannot honour.
#[derive(Debug, Clone, PartialEq)]
pub struct Unsupported {
    /// The file it came from.
    pub file: PathBuf,
    /// Dotted key in that file.
    pub key: String,
    /// What ferrotune does instead, and why.
    pub reason: String,
}

/// A key the tool itself would not recognise (a typo, or a newer version of the tool).
#[derive(Debug, Clone, PartialEq)]
pub struct Unknown {
    /// The file it came from.
    pub file: PathBuf,
    /// Dotted key in that file.
    pub key: String,
    /// The tool whose key list it is missing from.
    pub tool: Kind,
}

/// What a migration did with every key of every file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// Keys that became ferrotune settings.
    pub mapped: Vec<Mapped>,
    /// Keys that need nothing.
    pub ignored: Vec<Ignored>,
    /// Keys that cannot be honoured.
    pub unsupported: Vec<Unsupported>,
    /// Keys the tool would not recognise.
    pub unknown: Vec<Unknown>,
}

impl Report {
    pub(crate) fn map(&mut self, file: &Path, key: impl Into<String>, to: impl Into<String>) {
        self.mapped.push(Mapped {
            file: file.to_path_buf(),
            key: key.into(),
            to: to.into(),
        });
    }

    pub(crate) fn ignore(
        &mut self,
        file: &Path,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) {
        self.ignored.push(Ignored {
            file: file.to_path_buf(),
            key: key.into(),
            reason: reason.into(),
        });
    }

    pub(crate) fn unsupported(
        &mut self,
        file: &Path,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) {
        self.unsupported.push(Unsupported {
            file: file.to_path_buf(),
            key: key.into(),
            reason: reason.into(),
        });
    }

    pub(crate) fn unknown(&mut self, file: &Path, key: impl Into<String>, tool: Kind) {
        self.unknown.push(Unknown {
            file: file.to_path_buf(),
            key: key.into(),
            tool,
        });
    }

    /// Whether every key was mapped or needs nothing.
    pub fn is_clean(&self) -> bool {
        self.unsupported.is_empty() && self.unknown.is_empty()
    }

    /// Names of the unsupported keys, as `file: key`.
    pub fn unsupported_keys(&self) -> Vec<&str> {
        self.unsupported.iter().map(|u| u.key.as_str()).collect()
    }

    /// Names of the unknown keys.
    pub fn unknown_keys(&self) -> Vec<&str> {
        self.unknown.iter().map(|u| u.key.as_str()).collect()
    }

    /// Every key that cannot be honoured and every unknown key, in one message; None when clean.
    pub fn problems(&self) -> Option<String> {
        if self.is_clean() {
            return None;
        }
        let mut out = String::new();
        if !self.unsupported.is_empty() {
            out.push_str(&format!(
                "{} setting(s) cannot be honoured and were left out:",
                self.unsupported.len()
            ));
            for u in &self.unsupported {
                out.push_str(&format!(
                    "\n  {}: `{}`: {}",
                    u.file.display(),
                    u.key,
                    u.reason
                ));
            }
        }
        if !self.unknown.is_empty() {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!(
                "{} key(s) are unknown to the tool they were written for (a typo, or a newer \
                 version?) and were left out:",
                self.unknown.len()
            ));
            for u in &self.unknown {
                out.push_str(&format!(
                    "\n  {}: `{}` is not a key {} knows",
                    u.file.display(),
                    u.key,
                    u.tool
                ));
            }
        }
        Some(out)
    }

    /// What mapped to what, one line per key (for `convert` and `train -v`).
    pub fn mapping_lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .mapped
            .iter()
            .map(|m| format!("{}: `{}` -> {}", m.file.display(), m.key, m.to))
            .collect();
        out.extend(self.ignored.iter().map(|i| {
            format!(
                "{}: `{}` needs nothing: {}",
                i.file.display(),
                i.key,
                i.reason
            )
        }));
        out
    }
}

/// Pods (nodes) and processes per pod that the launcher config asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchShape {
    /// Machines (pods), each with NODE_RANK 0..nodes.
    pub nodes: u32,
    /// Processes on each machine (NPROC_PER_NODE), one per GPU.
    pub procs_per_node: u32,
    /// Rendezvous port of rank 0, when the launcher config names one.
    pub master_port: Option<u16>,
}

impl Default for LaunchShape {
    fn default() -> Self {
        Self {
            nodes: 1,
            procs_per_node: 1,
            master_port: None,
        }
    }
}

impl LaunchShape {
    /// Processes in all.
    pub fn world_size(&self) -> u32 {
        self.nodes * self.procs_per_node
    }

    /// How to start this many processes, when it is more than one.
    pub fn launch_hint(&self) -> Option<String> {
        if self.world_size() <= 1 {
            return None;
        }
        let port = self
            .master_port
            .map(|p| format!(" MASTER_PORT={p}"))
            .unwrap_or_default();
        Some(if self.nodes == 1 {
            format!(
                "launch {n} processes: NPROC_PER_NODE={n} WORLD_SIZE={n}{port} ferrotune train ...",
                n = self.procs_per_node
            )
        } else {
            format!(
                "launch {p} processes on each of {m} machines: on machine i run \
                 NPROC_PER_NODE={p} WORLD_SIZE={w} NODE_RANK=i MASTER_ADDR=<machine 0>{port} \
                 ferrotune train ... (or use a TrainingJob: `ferrotune convert --as-trainingjob`)",
                p = self.procs_per_node,
                m = self.nodes,
                w = self.world_size()
            )
        })
    }
}

/// The result: a validated ferrotune config, the launch shape and the report.
#[derive(Debug, Clone)]
pub struct Migration {
    /// The equivalent ferrotune config.
    pub config: Config,
    /// Processes the launcher config asks for.
    pub launch: LaunchShape,
    /// What happened to every key.
    pub report: Report,
    /// The kind of the main file.
    pub main_kind: Kind,
}

/// What to migrate.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Config files: one ferrotune or Axolotl config, and optionally an accelerate and a
    /// DeepSpeed file (each told apart by its keys).
    pub files: Vec<PathBuf>,
    /// An accelerate config (`--accelerate-config`).
    pub accelerate: Option<PathBuf>,
    /// A DeepSpeed JSON config (`--deepspeed`); it wins over one named inside other files.
    pub deepspeed: Option<PathBuf>,
    /// `key=value` overrides of the resulting ferrotune config, applied last.
    pub overrides: Vec<String>,
    /// Fail, naming them, when any key cannot be honoured or is unknown.
    pub strict: bool,
}

/// A migration that cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The resulting config is invalid, or a file cannot be read or parsed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A key whose value cannot be used at all.
    #[error("{}: key `{key}`: {message}", file.display())]
    Key {
        /// The file.
        file: PathBuf,
        /// Dotted key in it.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// The set of files does not make one run.
    #[error("{0}")]
    Files(String),
    /// `--strict` and some keys cannot be honoured or are unknown.
    #[error("--strict: {0}")]
    Strict(String),
}

/// Reads a YAML or JSON file into a value (an empty file is an empty mapping).
pub fn read_doc(file: &Path) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Io {
        file: file.to_path_buf(),
        source,
    })?;
    let value: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(_) => crate::load::parse_yaml(&text, file)?,
    };
    Ok(if value.is_null() {
        Value::Object(Map::new())
    } else {
        value
    })
}

/// Maps the requested files onto one ferrotune config.
pub fn migrate(req: &Request) -> Result<Migration, MigrateError> {
    let mut main: Option<(PathBuf, Value, Kind)> = None;
    let mut accel: Option<(PathBuf, Value)> = None;
    let mut ds: Option<(PathBuf, Value)> = None;
    let twice = |what: &str, a: &Path, b: &Path| {
        MigrateError::Files(format!(
            "two {what} files given ({} and {}); give one",
            a.display(),
            b.display()
        ))
    };
    let mut files: Vec<(PathBuf, Option<Kind>)> =
        req.files.iter().map(|f| (f.clone(), None)).collect();
    if let Some(a) = &req.accelerate {
        files.push((a.clone(), Some(Kind::Accelerate)));
    }
    if let Some(d) = &req.deepspeed {
        files.push((d.clone(), Some(Kind::DeepSpeed)));
    }
    for (file, forced) in files {
        let doc = read_doc(&file)?;
        if !doc.is_object() {
            return Err(ConfigError::Field {
                file,
                field: crate::load::TOP_LEVEL.into(),
                message: "expected a mapping of keys to values".into(),
            }
            .into());
        }
        match forced.unwrap_or_else(|| detect(&doc)) {
            kind @ (Kind::Ferrotune | Kind::Axolotl) => {
                if let Some((prior, _, _)) = &main {
                    return Err(twice("training config", prior, &file));
                }
                main = Some((file, doc, kind));
            }
            Kind::Accelerate => {
                if let Some((prior, _)) = &accel {
                    return Err(twice("accelerate", prior, &file));
                }
                accel = Some((file, doc));
            }
            Kind::DeepSpeed => {
                if let Some((prior, _)) = &ds {
                    return Err(twice("DeepSpeed", prior, &file));
                }
                ds = Some((file, doc));
            }
        }
    }
    let Some((main_file, main_doc, main_kind)) = main else {
        return Err(MigrateError::Files(
            "no training config given: name a ferrotune or Axolotl config (the accelerate and \
             DeepSpeed files only say how processes share the work)"
                .into(),
        ));
    };

    let mut report = Report::default();
    let mut launch = LaunchShape::default();
    // A DeepSpeed file named inside another file, with the file and key that name it.
    let mut ds_refs: Vec<(PathBuf, String, PathBuf)> = Vec::new();
    let mut out = match main_kind {
        Kind::Axolotl => {
            let mapped = axolotl::map(&main_doc, &main_file, &mut report)?;
            if let Some(r) = mapped.deepspeed {
                ds_refs.push((main_file.clone(), "deepspeed".into(), r));
            }
            mapped.config
        }
        _ => main_doc,
    };
    if let Some((file, doc)) = &accel {
        let mapped = accelerate::map(doc, file, &mut out, &mut report)?;
        launch = mapped.launch;
        if let Some(r) = mapped.deepspeed_config_file {
            ds_refs.push((
                file.clone(),
                "deepspeed_config.deepspeed_config_file".into(),
                r,
            ));
        }
    }
    // Precedence: --deepspeed / a positional DeepSpeed file, then accelerate's, then Axolotl's.
    let mut chosen = ds;
    for (file, key, target) in ds_refs.into_iter().rev() {
        if let Some((used, _)) = &chosen {
            report.ignore(&file, key, format!("overridden by {}", used.display()));
            continue;
        }
        let resolved = deepspeed::resolve(&file, &target);
        match resolved {
            Some(path) => {
                let doc = read_doc(&path)?;
                report.map(&file, key, format!("read {}", path.display()));
                chosen = Some((path, doc));
            }
            None => match deepspeed::stage_from_name(&target) {
                Some(stage) => {
                    report.map(
                        &file,
                        &key,
                        format!(
                            "distributed.strategy from the file name (ZeRO stage {stage}); {} \
                             was not found, so its other settings are not read",
                            target.display()
                        ),
                    );
                    deepspeed::apply_stage(stage, &mut out);
                }
                None => {
                    return Err(MigrateError::Key {
                        file,
                        key,
                        message: format!(
                            "{} was not found (looked in the working directory and beside the \
                             config)",
                            target.display()
                        ),
                    });
                }
            },
        }
    }
    if let Some((file, doc)) = &chosen {
        deepspeed::map(doc, file, &mut out, &mut report)?;
    }

    for given in &req.overrides {
        crate::load::apply_override(&mut out, given)?;
    }
    if req.strict
        && let Some(problems) = report.problems()
    {
        return Err(MigrateError::Strict(problems));
    }
    let config = Config::from_value(out, &main_file)?;
    Ok(Migration {
        config,
        launch,
        report,
        main_kind,
    })
}

/// Sets `a.b.c` in a ferrotune config document, creating sections.
pub(crate) fn set(doc: &mut Value, key: &str, value: Value) {
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    let mut node = doc;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let map = node.as_object_mut().expect("sections are mappings");
        if i + 1 == parts.len() {
            map.insert((*part).to_string(), value);
            return;
        }
        let next = map
            .entry((*part).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !next.is_object() {
            *next = Value::Object(Map::new());
        }
        node = next;
    }
}

/// Removes `a.b.c` from a ferrotune config document.
pub(crate) fn unset(doc: &mut Value, key: &str) {
    let (parent, leaf) = key.rsplit_once('.').unwrap_or(("", key));
    let node = if parent.is_empty() {
        Some(doc)
    } else {
        parent
            .split('.')
            .try_fold(doc, |node, part| node.get_mut(part))
    };
    if let Some(Value::Object(map)) = node {
        map.remove(leaf);
    }
}

/// Reads `a.b.c` of a ferrotune config document.
pub(crate) fn get<'a>(doc: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(doc, |node, part| node.get(part))
}

/// Sets the value and records the mapping.
pub(crate) fn put(
    doc: &mut Value,
    report: &mut Report,
    file: &Path,
    from: &str,
    to: &str,
    value: Value,
) {
    let shown = match &value {
        Value::String(s) if s.contains('\n') => format!("{s:?}"),
        other => show(other),
    };
    report.map(file, from, format!("{to} = {shown}"));
    set(doc, to, value);
}

/// A value as a short YAML-ish string.
pub(crate) fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether a value means "not set": null, false, an empty string, list or mapping.
pub(crate) fn is_unset(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(_) => false,
    }
}

/// A number, also when written as a string (`"2e-4"`, as YAML 1.1 readers leave it).
pub(crate) fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A non-negative whole number (also `2.0` or `"8"`).
pub(crate) fn as_u64(v: &Value) -> Option<u64> {
    let f = as_f64(v)?;
    (f >= 0.0 && f.fract() == 0.0 && f < 1e18).then_some(f as u64)
}

/// [`as_u64`], or the error for `key` of `file` saying what it takes and what it got.
pub(crate) fn count(v: &Value, file: &Path, key: &str) -> Result<u64, MigrateError> {
    as_u64(v).ok_or_else(|| {
        bad(
            file,
            key,
            format!("must be a whole number >= 0, got {}", show(v)),
        )
    })
}

/// A boolean, also as the strings `true` / `false`.
pub(crate) fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" => Some(true),
            "false" | "no" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// The error for a value of the wrong type or range.
pub(crate) fn bad(file: &Path, key: &str, message: impl Into<String>) -> MigrateError {
    MigrateError::Key {
        file: file.to_path_buf(),
        key: key.into(),
        message: message.into(),
    }
}
