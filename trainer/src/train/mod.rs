//! Training: the pipeline behind `ferrotune train` (base model → data → adapted model →
//! optimisation → outputs → evaluation) and its parts — flat parameters, AdamW, schedules,
//! clipping, checkpoints, metrics and progress.

pub mod checkpoint;
pub mod clip;
pub mod fit;
pub mod metrics;
pub mod optim;
pub mod outputs;
pub mod params;
pub mod progress;
pub mod schedule;
pub mod signals;

use anyhow::Context;
use ferrotune_config::Config;
use ferrotune_config::paths::expand;

pub use fit::Finish;

use crate::data;
use crate::eval;
use crate::model::llama::{Adaptation, Llama};
use crate::report::RunRecorder;
use crate::setup::load_base;
use signals::StopFlag;

/// Runs `ferrotune train`: fine-tunes as the config says, writes the outputs, and evaluates
/// before and/or after as `eval` asks.
pub fn run(config: &Config) -> anyhow::Result<Finish> {
    let stop = StopFlag::install()?;
    let out = expand(&config.output.dir).map_err(|e| anyhow::anyhow!("output.dir: {e}"))?;
    std::fs::create_dir_all(&out)
        .with_context(|| format!("creating output.dir {}", out.display()))?;
    std::fs::write(out.join("config.yaml"), config.to_yaml())
        .context("writing the resolved config")?;

    let base = load_base(config, 0)?;
    let c = &base.model.config;
    tracing::info!(
        "model {}: {} layers, hidden {}, {}/{} heads, vocab {}, on {}",
        base.name,
        c.num_hidden_layers,
        c.hidden_size,
        c.num_attention_heads,
        c.num_key_value_heads,
        c.vocab_size,
        crate::device::describe(&base.device)
    );
    let mut recorder = RunRecorder::create(&out, &base.device)?;
    let prepared = data::prepare(config, &base.tokenizer)?;
    tracing::info!("training data: {}", prepared.stats);
    let mut model = Llama::new(
        base.model.config,
        base.model.tensors,
        &Adaptation::from_config(config),
        config.training.seed,
    )?;

    let before = if config.eval.before_training {
        Some(eval::evaluate(
            &model,
            &base.tokenizer,
            &prepared.eval,
            config,
            &base.name,
            &out.join("base_eval"),
        )?)
    } else {
        None
    };
    if let Some(results) = &before {
        recorder.eval(0, results)?;
    }

    let outcome = fit::fit(
        &mut model,
        &prepared.train,
        base.tokenizer.pad_id(),
        config,
        &out,
        &stop,
        &mut recorder,
    )?;
    if outcome.finish == Finish::Interrupted {
        return Ok(Finish::Interrupted);
    }
    metrics::write_duration(&out.join("training_duration.json"), outcome.seconds)?;
    let model_path = outputs::write(&model, &base.tokenizer, config, &base.name, &out)?;
    tracing::info!(
        "trained {} steps in {}; last loss {}",
        outcome.steps,
        progress::format_duration(std::time::Duration::from_secs_f64(outcome.seconds)),
        outcome.last_loss.map_or("-".into(), |l| format!("{l:.4}"))
    );
    if config.eval.after_training {
        let after = eval::evaluate(
            &model,
            &base.tokenizer,
            &prepared.eval,
            config,
            &base.name,
            &model_path,
        )?;
        recorder.eval(outcome.steps, &after)?;
        eval::print_comparison(before.as_ref(), &after);
    }
    Ok(Finish::Completed)
}
