//! Training: the pipeline behind `ferrotune train` (base model → data → adapted model →
//! optimisation → outputs → evaluation) and its parts — flat parameters, AdamW, schedules,
//! clipping, checkpoints, metrics and progress.

pub mod checkpoint;
pub mod clip;
pub mod fit;
pub mod flat;
pub mod grads;
pub mod metrics;
pub mod optim;
pub mod outputs;
pub mod partition;
pub mod progress;
pub mod schedule;
pub mod shard;
pub mod signals;

use anyhow::Context;
use ferrotune_config::Config;
use ferrotune_config::paths::expand;

pub use fit::Finish;

use crate::data;
use crate::dist::{self, WorldEnv};
use crate::eval;
use crate::model::llama::{Adaptation, Llama};
use crate::report::RunRecorder;
use crate::setup::load_base;
use signals::StopFlag;

/// Runs `ferrotune train`: fine-tunes as the config says, writes the outputs, and evaluates
/// before and/or after as `eval` asks. With `world` (one rank of a multi-process job) the ranks
/// train together; rank 0 writes the metrics, exports and evaluates after training.
pub fn run(config: &Config, world: Option<&WorldEnv>) -> anyhow::Result<Finish> {
    let stop = StopFlag::install()?;
    let out = expand(&config.output.dir).map_err(|e| anyhow::anyhow!("output.dir: {e}"))?;
    let single = WorldEnv::local(1, 0, 0);
    let env = world.unwrap_or(&single);
    let leader = env.rank() == 0;
    std::fs::create_dir_all(&out)
        .with_context(|| format!("creating output.dir {}", out.display()))?;
    if leader {
        std::fs::write(out.join("config.yaml"), config.to_yaml())
            .context("writing the resolved config")?;
    }

    let base = load_base(config, env.local_rank)?;
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
    let mut recorder = if leader {
        Some(RunRecorder::create(&out, &base.device)?)
    } else {
        None
    };
    let prepared = data::prepare(config, &base.tokenizer)?;
    if leader {
        tracing::info!("training data: {}", prepared.stats);
    }
    let mut model = Llama::new(
        base.model.config,
        base.model.tensors,
        &Adaptation::from_config(config),
        config.training.seed,
    )?;
    model.cast(crate::device::dtype(config.training.dtype, &base.device)?)?;

    // Every rank scores the untuned model (the same result), so none waits for rank 0 longer
    // than the collectives' timeout; rank 0 writes it.
    let before = if config.eval.before_training {
        let dir = if leader {
            out.join("base_eval")
        } else {
            std::env::temp_dir().join(format!("ferrotune-base-eval-rank{}", env.rank()))
        };
        Some(eval::evaluate(
            &model,
            &base.tokenizer,
            &prepared.eval,
            config,
            &base.name,
            &dir,
        )?)
    } else {
        None
    };
    if let (Some(results), Some(r)) = (&before, &mut recorder) {
        r.eval(0, results)?;
    }

    let mut comm = dist::connect(env, &config.distributed, &base.device)?;
    let outcome = fit::fit(
        &mut model,
        &prepared.train,
        base.tokenizer.pad_id(),
        config,
        &out,
        &stop,
        recorder.as_mut(),
        comm.as_mut(),
    )?;
    if outcome.finish == Finish::Interrupted {
        return Ok(Finish::Interrupted);
    }
    let Some(mut recorder) = recorder else {
        return Ok(Finish::Completed);
    };
    metrics::write_duration(&out.join("training_duration.json"), outcome.seconds)?;
    let model_path = outputs::write(&model, &base.tokenizer, config, &base.name, &out)?;
    tracing::info!(
        "trained {} steps in {}; last loss {}",
        outcome.steps,
        progress::format_duration(std::time::Duration::from_secs_f64(outcome.seconds)),
        outcome.last_loss.map_or("-".into(), |l| format!("{l:.4}"))
    );
    let skipped = metrics::read(&out.join("metrics.jsonl"))?
        .iter()
        .filter(|r| r.skipped)
        .count();
    if skipped > 0 {
        tracing::warn!(
            "{skipped} of {} steps were skipped (non-finite loss or gradients, training.nonfinite: \
             skip); their updates were not applied",
            outcome.steps
        );
    }
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
