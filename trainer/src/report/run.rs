//! A finished (or running) output directory as a report reads it: the step metrics, the
//! resolved config, the training time, where it ran, and the evaluations of the untuned and
//! the trained model with their predictions.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ferrotune_config::Config;
use serde::Deserialize;

use super::run_info::{RUN_INFO_FILE, RunInfo};
use crate::eval::results::{EvalResults, Prediction, read_predictions};
use crate::train::metrics::{self, StepRecord};

/// The directories an evaluation of the trained model lives in, in the order looked at.
const TUNED_DIRS: [&str; 2] = ["lora_adapters", "final_model"];
/// The directory of the evaluation before training.
const UNTUNED_DIR: &str = "base_eval";

/// One run directory's contents.
#[derive(Debug, Clone)]
pub struct Run {
    /// The run's name in the report (its directory's name unless two runs share it).
    pub label: String,
    /// The directory.
    pub dir: PathBuf,
    /// `metrics.jsonl`, one record per optimizer step.
    pub steps: Vec<StepRecord>,
    /// `config.yaml` as written.
    pub config_text: Option<String>,
    /// `config.yaml` parsed, when it is a valid config.
    pub config: Option<Config>,
    /// `training_duration.json`'s seconds.
    pub training_seconds: Option<f64>,
    /// `run_info.json`.
    pub info: Option<RunInfo>,
    /// The untuned model's evaluation (`base_eval/`).
    pub untuned: Option<Evaluation>,
    /// The trained model's evaluation (`lora_adapters/` or `final_model/`).
    pub tuned: Option<Evaluation>,
}

/// An `eval_results.json` with the `predictions.jsonl` beside it.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The directory holding both files.
    pub dir: PathBuf,
    /// The ROUGE means.
    pub results: EvalResults,
    /// The generated summaries (empty when the file is missing).
    pub predictions: Vec<Prediction>,
}

#[derive(Deserialize)]
struct Duration {
    duration_seconds: f64,
}

impl Run {
    /// Reads the run in `dir`, labelled `label`. Missing files are left out; a directory with
    /// neither metrics nor evaluation results is an error, as is any file that is present but
    /// unreadable.
    pub fn load(dir: &Path, label: String) -> anyhow::Result<Self> {
        if !dir.is_dir() {
            bail!("{}: no such directory", dir.display());
        }
        let steps = metrics::read(&dir.join("metrics.jsonl"))?;
        let config_text = read_optional(&dir.join("config.yaml"))?;
        let config = config_text.as_deref().and_then(|text| {
            Config::from_yaml(text, &dir.join("config.yaml"), &[])
                .inspect_err(|e| tracing::warn!("{e}; the report shows it as text only"))
                .ok()
        });
        let duration_path = dir.join("training_duration.json");
        let training_seconds = read_optional(&duration_path)?
            .map(|text| {
                serde_json::from_str::<Duration>(&text)
                    .with_context(|| {
                        format!(
                            "{}: expected {{\"duration_seconds\": number}}",
                            duration_path.display()
                        )
                    })
                    .map(|d| d.duration_seconds)
            })
            .transpose()?;
        let info_path = dir.join(RUN_INFO_FILE);
        let info = info_path
            .is_file()
            .then(|| RunInfo::read(&info_path))
            .transpose()?;
        let untuned = Evaluation::load(&dir.join(UNTUNED_DIR))?;
        let mut tuned = None;
        for name in TUNED_DIRS {
            if let Some(found) = Evaluation::load(&dir.join(name))? {
                tuned = Some(found);
                break;
            }
        }
        if steps.is_empty() && untuned.is_none() && tuned.is_none() {
            bail!(
                "{}: not a ferrotune output directory: it has no metrics.jsonl and no \
                 eval_results.json in {UNTUNED_DIR}/, {}/ or {}/",
                dir.display(),
                TUNED_DIRS[0],
                TUNED_DIRS[1]
            );
        }
        Ok(Self {
            label,
            dir: dir.to_path_buf(),
            steps,
            config_text,
            config,
            training_seconds,
            info,
            untuned,
            tuned,
        })
    }

    /// The largest peak memory recorded, in bytes.
    pub fn peak_memory_bytes(&self) -> Option<u64> {
        self.steps.iter().filter_map(|s| s.peak_memory_bytes).max()
    }

    /// Tokens per second over the whole training: all tokens over the last elapsed time.
    pub fn mean_tokens_per_second(&self) -> Option<f64> {
        let last = self.steps.last()?;
        let tokens: u64 = self.steps.iter().map(|s| s.tokens).sum();
        (last.elapsed_seconds > 0.0).then(|| tokens as f64 / last.elapsed_seconds)
    }
}

impl Evaluation {
    /// Reads `dir/eval_results.json` and `dir/predictions.jsonl`; `None` without the results.
    fn load(dir: &Path) -> anyhow::Result<Option<Self>> {
        let results_path = dir.join("eval_results.json");
        let Some(text) = read_optional(&results_path)? else {
            return Ok(None);
        };
        let results: EvalResults = serde_json::from_str(&text)
            .with_context(|| format!("{}: not an eval_results.json", results_path.display()))?;
        let predictions_path = dir.join("predictions.jsonl");
        let predictions = if predictions_path.is_file() {
            read_predictions(&predictions_path)?
        } else {
            Vec::new()
        };
        Ok(Some(Self {
            dir: dir.to_path_buf(),
            results,
            predictions,
        }))
    }
}

/// Labels for run directories: each one's name, or its path as given where names repeat.
pub fn labels(dirs: &[PathBuf]) -> Vec<String> {
    let name = |dir: &PathBuf| {
        dir.canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string())
    };
    let names: Vec<String> = dirs.iter().map(name).collect();
    names
        .iter()
        .zip(dirs)
        .map(|(n, dir)| {
            if names.iter().filter(|m| *m == n).count() > 1 {
                dir.display().to_string()
            } else {
                n.clone()
            }
        })
        .collect()
}

/// The file's text, or `None` when it does not exist.
fn read_optional(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_directory_names_unless_they_repeat() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = ["a/run", "b/run", "b/full"]
            .iter()
            .map(|d| tmp.path().join(d))
            .collect();
        for d in &dirs {
            std::fs::create_dir_all(d).unwrap();
        }
        let given = |i: usize| dirs[i].display().to_string();
        assert_eq!(labels(&dirs), [given(0), given(1), "full".into()]);
        assert_eq!(labels(&dirs[1..]), ["run", "full"]);
        // A trailing slash or `..` names the same directory.
        let roundabout = tmp.path().join("a/run/../run/");
        assert_eq!(labels(&[roundabout]), ["run"]);
    }
}
