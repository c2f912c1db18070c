//! The evaluation files: `predictions.jsonl` (one generated summary per line) and
//! `eval_results.json` (the ROUGE means, plain and Porter-stemmed).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::rouge::{self, RougeMeans};

/// One line of `predictions.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prediction {
    /// The input conversation.
    pub dialogue: String,
    /// The reference summary.
    pub reference: String,
    /// The model's summary.
    pub prediction: String,
}

/// `eval_results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalResults {
    /// Mean F-measures without stemming (`rouge1`, `rouge2`, `rougeL`, `rougeLsum`): the figures
    /// the course reports, as deterministic means rather than bootstrap estimates.
    #[serde(flatten)]
    pub plain: RougeMeans,
    /// Number of scored predictions.
    pub num_samples: usize,
    /// Name of the evaluated model.
    pub model_name: String,
    /// Where the evaluated model (or its adapters) lives.
    pub model_path: String,
    /// The same means with the tokens Porter-stemmed.
    pub stemmed: RougeMeans,
}

/// A predictions or results file that cannot be read, parsed or written.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file could not be written.
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A line of `predictions.jsonl` is not a valid prediction.
    #[error(
        "{}, line {line}, column {column}: {message}; each line must be a JSON object with the \
         string fields \"dialogue\", \"reference\" and \"prediction\"",
        path.display()
    )]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// 1-based column where parsing stopped.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// `predictions.jsonl` holds no predictions.
    #[error("{}: no predictions to score: the file has no JSON lines", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Reads `predictions.jsonl`; blank lines are skipped, other fields than the three are ignored.
pub fn read_predictions(path: &Path) -> Result<Vec<Prediction>, ResultsError> {
    let bytes = std::fs::read(path).map_err(|source| ResultsError::Read {
        path: path.into(),
        source,
    })?;
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(index, line)| {
            serde_json::from_slice(line).map_err(|e| ResultsError::Line {
                path: path.into(),
                line: index + 1,
                column: e.column(),
                message: without_position(&e),
            })
        })
        .collect()
}

/// serde_json's message without its " at line L column C" (positions within one line would
/// always say line 1).
fn without_position(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    match message.strip_suffix(&position) {
        Some(bare) => bare.to_owned(),
        None => message,
    }
}

/// Writes `predictions.jsonl`, one JSON object per line.
pub fn write_predictions(path: &Path, predictions: &[Prediction]) -> Result<(), ResultsError> {
    let write = || -> io::Result<()> {
        let mut out = BufWriter::new(File::create(path)?);
        for prediction in predictions {
            serde_json::to_writer(&mut out, prediction)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    };
    write().map_err(|source| ResultsError::Write {
        path: path.into(),
        source,
    })
}

impl EvalResults {
    /// Scores `predictions` against their references, plain and stemmed; `None` when there are
    /// none.
    pub fn score(
        predictions: &[Prediction],
        model_name: impl Into<String>,
        model_path: impl Into<String>,
    ) -> Option<Self> {
        let pairs: Vec<(&str, &str)> = predictions
            .iter()
            .map(|p| (p.prediction.as_str(), p.reference.as_str()))
            .collect();
        Some(Self {
            plain: rouge::mean_fmeasures(&pairs, false)?,
            num_samples: predictions.len(),
            model_name: model_name.into(),
            model_path: model_path.into(),
            stemmed: rouge::mean_fmeasures(&pairs, true)?,
        })
    }

    /// Writes `eval_results.json` as pretty-printed JSON.
    pub fn write(&self, path: &Path) -> Result<(), ResultsError> {
        let write = || -> io::Result<()> {
            let mut text = serde_json::to_string_pretty(self)?;
            text.push('\n');
            std::fs::write(path, text)
        };
        write().map_err(|source| ResultsError::Write {
            path: path.into(),
            source,
        })
    }
}

/// Reads and scores a `predictions.jsonl` (`ferrotune eval --predictions FILE`). The model is
/// named after the file: `NAME.predictions.jsonl` gives `NAME`, any other file name its
/// directory's name; the model path is the file's directory.
pub fn evaluate_file(path: &Path) -> Result<EvalResults, ResultsError> {
    let predictions = read_predictions(path)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let model_name = match file_name.strip_suffix(".predictions.jsonl") {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => dir
            .canonicalize()
            .ok()
            .and_then(|dir| {
                dir.file_name()
                    .map(|name| name.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| file_name.clone().into_owned()),
    };
    EvalResults::score(&predictions, model_name, dir.to_string_lossy())
        .ok_or_else(|| ResultsError::Empty { path: path.into() })
}
