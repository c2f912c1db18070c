//! What `ferrotune train` records as it goes for people to look at later: `run_info.json` and
//! TensorBoard scalars for every step and every evaluation.

use std::path::Path;

use candle_core::Device;

use super::run_info::{RUN_INFO_FILE, RunInfo};
use super::tensorboard::{EventWriter, EventsError};
use crate::eval::results::EvalResults;
use crate::train::metrics::StepRecord;

/// Records one training process's steps and evaluations into its output directory.
#[derive(Debug)]
pub struct RunRecorder {
    events: EventWriter,
    started: bool,
}

impl RunRecorder {
    /// Writes `run_info.json` into `out` and starts a new TensorBoard event file there.
    pub fn create(out: &Path, device: &Device) -> anyhow::Result<Self> {
        RunInfo::current(device).write(&out.join(RUN_INFO_FILE))?;
        let events = EventWriter::create(out)?;
        tracing::debug!("TensorBoard events -> {}", events.path().display());
        Ok(Self {
            events,
            started: false,
        })
    }

    /// Records an optimizer step under the `train/` tags. The first step recorded also tells
    /// TensorBoard to forget what earlier processes wrote from that step on (a resumed run
    /// rewrites those steps, as `metrics.jsonl` does).
    pub fn step(&mut self, record: &StepRecord) -> Result<(), EventsError> {
        if !self.started {
            self.events.session_start(record.step)?;
            self.started = true;
        }
        let mut values = vec![
            ("train/loss", record.loss),
            ("train/learning_rate", record.learning_rate),
            ("train/grad_norm", record.grad_norm),
            ("train/tokens_per_second", record.tokens_per_second),
        ];
        if let Some(bytes) = record.peak_memory_bytes {
            values.push(("train/peak_memory_bytes", bytes as f64));
        }
        self.events.scalars(record.step, &values)
    }

    /// Records ROUGE F-measures (without stemming) under the `eval/` tags at `step`: 0 for the
    /// untuned model, the last step for the trained one.
    pub fn eval(&mut self, step: u64, results: &EvalResults) -> Result<(), EventsError> {
        let r = &results.plain;
        self.events.scalars(
            step,
            &[
                ("eval/rouge1", r.rouge1),
                ("eval/rouge2", r.rouge2),
                ("eval/rougeL", r.rouge_l),
                ("eval/rougeLsum", r.rouge_lsum),
            ],
        )
    }
}
