//! Progress for people and for whoever watches the run: a progress bar with loss, tokens/s and
//! ETA on a terminal; plain `tracing` lines every `logging_steps` otherwise (pods, CI); and the
//! latest [`Progress`] snapshot in `$FERROTUNE_PROGRESS_FILE` when that is set.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferrotune_config::progress::{
    PROGRESS_FILE_ENV, PROGRESS_LOG_ENV, PROGRESS_LOG_PREFIX, Progress, RunPhase,
};
use indicatif::{ProgressBar, ProgressStyle};

use super::metrics::StepRecord;

/// Reports training progress.
#[derive(Debug)]
pub struct Reporter {
    bar: Option<ProgressBar>,
    total: u64,
    every: u64,
    started: Instant,
    first_step: u64,
    window_loss: f64,
    window_steps: u64,
    window_tokens: u64,
    window_start: Instant,
    last_checkpoint: Option<u64>,
    file: Option<PathBuf>,
    log: bool,
}

impl Reporter {
    /// A reporter for steps `first_step + 1 ..= total`, logging every `every` steps.
    pub fn new(total: u64, first_step: u64, every: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total).with_position(first_step);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30.cyan/blue} {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar
        });
        let file = std::env::var_os(PROGRESS_FILE_ENV).map(PathBuf::from);
        Self {
            bar,
            total,
            every: every.max(1),
            started: Instant::now(),
            first_step,
            window_loss: 0.0,
            window_steps: 0,
            window_tokens: 0,
            window_start: Instant::now(),
            last_checkpoint: None,
            file,
            log: std::env::var(PROGRESS_LOG_ENV).is_ok_and(|v| v == "1"),
        }
    }

    /// Records a finished step.
    pub fn step(&mut self, r: &StepRecord) {
        self.window_loss += r.loss;
        self.window_steps += 1;
        self.window_tokens += r.tokens;
        let eta = self.eta(r.step);
        if let Some(bar) = &self.bar {
            bar.set_position(r.step);
            bar.set_message(format!(
                "loss {:.4}  lr {:.2e}  {:.0} tok/s",
                r.loss, r.learning_rate, r.tokens_per_second
            ));
        }
        if r.step.is_multiple_of(self.every) || r.step == self.total {
            let secs = self.window_start.elapsed().as_secs_f64().max(1e-9);
            let loss = self.window_loss / self.window_steps as f64;
            let tps = self.window_tokens as f64 / secs;
            let line = format!(
                "step {}/{}  loss {loss:.4}  lr {:.3e}  grad_norm {:.3}  {tps:.0} tok/s  ETA {}",
                r.step,
                self.total,
                r.learning_rate,
                r.grad_norm,
                format_duration(eta)
            );
            match &self.bar {
                Some(bar) => bar.println(line),
                None => tracing::info!("{line}"),
            }
            self.publish(Progress {
                phase: RunPhase::Training,
                step: r.step,
                total_steps: self.total,
                loss: Some(loss),
                tokens_per_second: Some(tps),
                eta_seconds: Some(eta.as_secs()),
                last_checkpoint_step: self.last_checkpoint,
            });
            self.window_loss = 0.0;
            self.window_steps = 0;
            self.window_tokens = 0;
            self.window_start = Instant::now();
        }
    }

    /// Records a written checkpoint.
    pub fn checkpoint(&mut self, step: u64) {
        self.last_checkpoint = Some(step);
    }

    /// Announces a phase change (loading, evaluating, exporting, done).
    pub fn phase(&self, phase: RunPhase, step: u64) {
        self.publish(Progress {
            phase,
            step,
            total_steps: self.total,
            last_checkpoint_step: self.last_checkpoint,
            ..Default::default()
        });
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn eta(&self, step: u64) -> Duration {
        let done = step.saturating_sub(self.first_step).max(1) as f64;
        let per_step = self.started.elapsed().as_secs_f64() / done;
        Duration::from_secs_f64(per_step * self.total.saturating_sub(step) as f64)
    }

    fn publish(&self, p: Progress) {
        if !self.log && self.file.is_none() {
            return;
        }
        let json = match serde_json::to_string(&p) {
            Ok(json) => json,
            Err(e) => return tracing::warn!("cannot encode progress: {e}"),
        };
        if self.log {
            eprintln!("{PROGRESS_LOG_PREFIX}{json}");
        }
        let Some(path) = &self.file else { return };
        let tmp = path.with_extension("tmp");
        let written = std::fs::write(&tmp, &json).and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            tracing::warn!("cannot write progress to {}: {e}", path.display());
        }
    }
}

/// `1h02m03s`, `4m05s` or `6s`.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, m, sec) => format!("{h}h{m:02}m{sec:02}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(Duration::from_secs(6)), "6s");
        assert_eq!(format_duration(Duration::from_secs(245)), "4m05s");
        assert_eq!(format_duration(Duration::from_secs(3723)), "1h02m03s");
    }
}
