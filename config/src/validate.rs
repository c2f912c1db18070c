//! Cross-field and range checks that serde's types cannot express.

use crate::{Config, DeviceKind, Mode, Precision};

/// One rule a config breaks.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Dotted path of the field.
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

fn problem(field: &str, message: impl Into<String>) -> Problem {
    Problem {
        field: field.into(),
        message: message.into(),
    }
}

fn check(ok: bool, field: &str, message: impl Into<String>) -> Result<(), Problem> {
    if ok {
        Ok(())
    } else {
        Err(problem(field, message))
    }
}

/// A number as the user would write it: `1e30` rather than thirty-one digits.
pub fn show(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 1e6 || (magnitude > 0.0 && magnitude < 1e-4) {
        format!("{value:e}")
    } else {
        value.to_string()
    }
}

fn positive(value: f64, field: &str) -> Result<(), Problem> {
    check(
        value.is_finite() && value > 0.0,
        field,
        format!("must be a finite number > 0, got {}", show(value)),
    )
}

fn non_negative(value: f64, field: &str, note: &str) -> Result<(), Problem> {
    check(
        value.is_finite() && value >= 0.0,
        field,
        format!("must be >= 0{note}, got {}", show(value)),
    )
}

fn in_unit(value: f64, field: &str, closed_top: bool) -> Result<(), Problem> {
    let ok = value.is_finite() && value >= 0.0 && (value < 1.0 || (closed_top && value == 1.0));
    let range = if closed_top { "[0, 1]" } else { "[0, 1)" };
    check(
        ok,
        field,
        format!("must be in {range}, got {}", show(value)),
    )
}

impl Config {
    /// Checks every rule; the first broken one is returned.
    pub fn validate(&self) -> Result<(), Problem> {
        let m = &self.model;
        match (&m.path, &m.hub) {
            (Some(_), Some(_)) => {
                return Err(problem("model", "set either `path` or `hub`, not both"));
            }
            (None, None) => {
                return Err(problem(
                    "model",
                    "set `path` (a .gguf file or model directory) or `hub` (a repo id)",
                ));
            }
            (Some(p), None) => check(!p.trim().is_empty(), "model.path", "must not be empty")?,
            (None, Some(h)) => check(
                h.split('/').count() == 2 && h.split('/').all(|s| !s.trim().is_empty()),
                "model.hub",
                format!("must be a repo id of the form owner/name, got `{h}`"),
            )?,
        }

        let d = &self.data;
        check(
            !d.train.trim().is_empty(),
            "data.train",
            "must name a .jsonl, .json or .parquet file",
        )?;
        in_unit(d.eval_fraction, "data.eval_fraction", false)?;
        check(
            !d.input_field.is_empty(),
            "data.input_field",
            "must not be empty",
        )?;
        check(
            !d.target_field.is_empty(),
            "data.target_field",
            "must not be empty",
        )?;
        check(
            d.max_train_samples != Some(0),
            "data.max_train_samples",
            "must be at least 1 when set",
        )?;

        check(
            self.prompt.user_template.contains("{dialogue}"),
            "prompt.user_template",
            "must contain `{dialogue}`, where the row's input text goes",
        )?;

        if self.training.mode != Mode::Full {
            let l = &self.lora;
            check(l.r >= 1, "lora.r", "must be at least 1")?;
            positive(l.alpha, "lora.alpha")?;
            in_unit(l.dropout, "lora.dropout", false)?;
            if let Some(t) = &l.target_modules {
                check(
                    !t.is_empty(),
                    "lora.target_modules",
                    "must list at least one projection",
                )?;
            }
        }

        let t = &self.training;
        check(
            t.epochs >= 1 || t.max_steps.is_some(),
            "training.epochs",
            "must be at least 1 (or set max_steps)",
        )?;
        check(
            t.max_steps != Some(0),
            "training.max_steps",
            "must be at least 1 when set",
        )?;
        check(
            t.micro_batch_size != Some(0),
            "training.micro_batch_size",
            "must be at least 1",
        )?;
        check(
            t.gradient_accumulation_steps != Some(0),
            "training.gradient_accumulation_steps",
            "must be at least 1",
        )?;
        positive(t.learning_rate(), "training.learning_rate")?;
        check(
            t.learning_rate() < 1.0,
            "training.learning_rate",
            format!(
                "{} is far too large: use a value below 1",
                show(t.learning_rate())
            ),
        )?;
        check(
            t.warmup_steps.is_none() || t.warmup_ratio.is_none(),
            "training.warmup_ratio",
            "set either warmup_steps or warmup_ratio, not both",
        )?;
        if let Some(r) = t.warmup_ratio {
            in_unit(r, "training.warmup_ratio", true)?;
        }
        non_negative(t.weight_decay, "training.weight_decay", "")?;
        in_unit(t.adam_beta1, "training.adam_beta1", false)?;
        in_unit(t.adam_beta2, "training.adam_beta2", false)?;
        positive(t.adam_epsilon, "training.adam_epsilon")?;
        non_negative(
            t.max_grad_norm,
            "training.max_grad_norm",
            " (0 disables clipping)",
        )?;
        check(
            t.max_seq_length >= 16,
            "training.max_seq_length",
            format!("must be at least 16, got {}", t.max_seq_length),
        )?;
        check(
            t.logging_steps >= 1,
            "training.logging_steps",
            "must be at least 1",
        )?;
        check(
            t.save_total_limit >= 1,
            "training.save_total_limit",
            "must be at least 1",
        )?;
        check(
            !(t.dtype == Precision::Bf16 && t.device == DeviceKind::Cpu),
            "training.dtype",
            "bf16 needs device cuda; on the CPU use f32 (or auto)",
        )?;

        let dist = &self.distributed;
        positive(dist.bucket_size_mb, "distributed.bucket_size_mb")?;
        check(
            dist.timeout_seconds >= 1,
            "distributed.timeout_seconds",
            "must be at least 1",
        )?;

        let e = &self.eval;
        check(e.num_samples >= 1, "eval.num_samples", "must be at least 1")?;
        check(
            e.max_new_tokens >= 1,
            "eval.max_new_tokens",
            "must be at least 1",
        )?;
        check(e.batch_size >= 1, "eval.batch_size", "must be at least 1")?;

        check(
            !self.output.dir.trim().is_empty(),
            "output.dir",
            "must not be empty",
        )?;
        check(
            !(self.output.merge_adapter && t.mode == Mode::Full),
            "output.merge_adapter",
            "only applies to lora and qlora (full fine-tuning already writes final_model/)",
        )?;
        Ok(())
    }
}
