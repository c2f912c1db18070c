//! The optimisation loop: each step's micro-batches → gradients → (reduction across ranks) →
//! clipping → AdamW → metrics, with checkpoints every `save_steps`, on interrupt and at the end,
//! and resumption from the newest checkpoint.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use ferrotune_config::progress::RunPhase;
use ferrotune_config::validate::show;
use ferrotune_config::{Config, NonFinitePolicy};

use super::checkpoint::{self, TrainState};
use super::clip::clip_coefficient;
use super::grads::FlatGrads;
use super::metrics::{MetricsLog, StepRecord};
use super::optim::AdamWConfig;
use super::partition::Partition;
use super::progress::Reporter;
use super::schedule::learning_rate;
use super::signals::StopFlag;
use crate::data::{BatchLayout, Sample, collate, epoch_order};
use crate::dist::Collective;
use crate::model::llama::Llama;
use crate::model::pass::{DropoutPlan, Pass, sample_stream};
use crate::report::RunRecorder;

/// How the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Every step ran.
    Completed,
    /// A stop was requested; a checkpoint of the last finished step was written.
    Interrupted,
}

/// What training did.
#[derive(Debug, Clone)]
pub struct FitOutcome {
    /// How it ended.
    pub finish: Finish,
    /// Optimizer steps done (in this and earlier runs).
    pub steps: u64,
    /// Seconds of training (in this and earlier runs).
    pub seconds: f64,
    /// Loss of the last step.
    pub last_loss: Option<f64>,
    /// Bytes of parameters (master, model and frozen copies) and optimizer state this rank
    /// held while training.
    pub state_bytes: usize,
}

/// Trains `model` on `samples` as `config.training` says, as rank `comm.rank()` of
/// `comm.world()` under `config.distributed.strategy`, writing checkpoints (every rank its part)
/// under `out`, and metrics there through `recorder` (rank 0 only). The model is whole on every
/// rank when it returns.
#[allow(clippy::too_many_arguments)]
pub fn fit(
    model: &mut Llama,
    samples: &[Sample],
    pad_id: u32,
    config: &Config,
    out: &Path,
    stop: &StopFlag,
    mut recorder: Option<&mut RunRecorder>,
    comm: &mut dyn Collective,
) -> anyhow::Result<FitOutcome> {
    let t = &config.training;
    let (rank, world) = (comm.rank(), comm.world());
    let leader = rank == 0;
    let layout = BatchLayout {
        micro: t.micro_batch_size(),
        accumulation: t.gradient_accumulation_steps(),
        world,
    };
    let n = samples.len();
    let steps_per_epoch = layout.steps_per_epoch(n) as u64;
    let total = t.max_steps.unwrap_or(steps_per_epoch * u64::from(t.epochs));
    let warmup = t.warmup_steps(total);
    let strategy = config.distributed.strategy;
    let mut grads = FlatGrads::for_model(model, Partition::on_device(strategy, model))?;
    let bucket_bytes = (config.distributed.bucket_size_mb * 1024.0 * 1024.0) as usize;
    let mut part = Partition::new(
        model,
        &grads,
        strategy,
        (rank, world),
        AdamWConfig::from_training(t),
        bucket_bytes,
    )?;
    let ckpt_root = out.join("checkpoints");
    let mut state = TrainState {
        format: checkpoint::FORMAT,
        step: 0,
        total_steps: total,
        mode: t.mode,
        seed: t.seed,
        world_size: world,
        strategy,
        trainable_elements: grads.len(),
        train_seconds: 0.0,
    };
    let found = if config.output.resume {
        checkpoint::newest(&ckpt_root)?
    } else {
        None
    };
    let seen = found.as_ref().map_or(-1.0, |c| c.state.step as f64);
    ensure!(
        comm.sum_f64(&[seen])?[0] == seen * world as f64,
        "rank {rank} found {} in {}, but other ranks found another: output.dir must be one \
         directory that every rank shares",
        found
            .as_ref()
            .map_or("no checkpoint".into(), |c| c.dir.display().to_string()),
        ckpt_root.display()
    );
    if let Some(ckpt) = found {
        let s = &ckpt.state;
        if s.mode != t.mode || s.seed != t.seed {
            bail!(
                "{} was written by a {:?} run with seed {}, this config asks for {:?} with seed {}: \
                 use another output.dir, or set output.resume: false to start over",
                ckpt.dir.display(),
                s.mode,
                s.seed,
                t.mode,
                t.seed
            );
        }
        let (whole, optimizer_step) = checkpoint::restore(&ckpt, &part.trainable())?;
        part.restore(&whole, optimizer_step, model, comm)
            .with_context(|| format!("restoring {}", ckpt.dir.display()))?;
        state.step = s.step;
        state.train_seconds = s.train_seconds;
        if leader {
            tracing::info!(
                "resuming from {} (step {}/{total}, written by {} {:?} ranks)",
                ckpt.dir.display(),
                s.step,
                s.world_size,
                s.strategy
            );
        }
    }
    std::fs::create_dir_all(&ckpt_root)
        .with_context(|| format!("creating {}", ckpt_root.display()))?;
    if leader {
        tracing::info!(
            "training {} parameters: {n} samples, {} per step ({} × {} micro-batches × {} ranks, \
             {strategy:?}), {total} steps, {steps_per_epoch} per epoch, warm-up {warmup}",
            grads.len(),
            layout.global_batch(),
            layout.micro,
            layout.accumulation,
            layout.world
        );
    }

    let mut metrics = if leader {
        Some(MetricsLog::open(&out.join("metrics.jsonl"), state.step)?)
    } else {
        None
    };
    let mut reporter = leader.then(|| Reporter::new(total, state.step, t.logging_steps));
    let started = Instant::now();
    let prior_seconds = state.train_seconds;
    let mut order: Option<(u64, Vec<usize>)> = None;
    let mut last_loss = None;
    let mut saved_step = state.step;
    // A checkpoint of this rank's part of the state, copied to the host.
    let save = |state: &TrainState, part: &Partition, comm: &mut dyn Collective| {
        checkpoint::save(&ckpt_root, state, &part.pieces()?, comm, t.save_total_limit)
    };
    while state.step < total {
        // Every rank stops at the same step, whichever of them was asked to.
        let stops = comm.sum_f64(&[f64::from(u8::from(stop.requested()))])?;
        if stops[0] > 0.0 {
            break;
        }
        let step = state.step;
        let epoch = step / steps_per_epoch;
        if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
            order = Some((epoch, epoch_order(n, t.seed, epoch)));
        }
        let (_, order) = order.as_ref().expect("set above");
        let in_epoch = (step % steps_per_epoch) as usize;
        let n_targets: usize = layout
            .step_samples(order, in_epoch)
            .iter()
            .map(|&i| samples[i].target().len())
            .sum();
        let tick = Instant::now();
        grads.zero()?;
        let mine = layout.micro_batches(order, in_epoch, rank);
        // ZeRO-3 ranks gather together, so all run as many micro-batches as the busiest one.
        let rounds = (0..world)
            .map(|r| layout.micro_batches(order, in_epoch, r))
            .max()
            .unwrap_or(0);
        let (loss_sum, tokens) = {
            let weights = part.weights(model, &mut *comm);
            let (mut loss_sum, mut tokens) = (0.0, 0u64);
            for k in 0..rounds {
                if k >= mine {
                    weights.idle()?;
                    continue;
                }
                let idx = layout.micro_batch(order, in_epoch, rank, k);
                let micro: Vec<&Sample> = idx.iter().map(|&i| &samples[i]).collect();
                let batch = collate(&micro, pad_id);
                let pass = Pass {
                    batch: batch.batch,
                    seq: batch.seq,
                    positions: (0..batch.batch).flat_map(|_| 0..batch.seq as u32).collect(),
                    rope: &model.rope,
                    key_mask: None,
                    dropout: Some(DropoutPlan {
                        seed: t.seed,
                        sample_streams: idx
                            .iter()
                            .map(|&i| sample_stream(step, i as u64))
                            .collect(),
                    }),
                };
                let grad_scale = 1.0 / n_targets.max(1) as f32;
                let micro_loss = model
                    .forward_backward_with(
                        &weights,
                        &batch.ids,
                        &batch.targets,
                        &pass,
                        grad_scale,
                        t.gradient_checkpointing,
                        &mut grads,
                    )
                    .with_context(|| format!("step {}, micro-batch {}", step + 1, k + 1))?;
                loss_sum += micro_loss.loss_sum;
                tokens += micro.iter().map(|s| s.len() as u64).sum::<u64>();
            }
            (loss_sum, tokens)
        };
        let sums = comm.sum_f64(&[loss_sum, tokens as f64])?;
        let (loss, tokens) = (sums[0] / n_targets.max(1) as f64, sums[1] as u64);
        let (shards, grad_norm) = part.reduce(&mut grads, comm)?;
        let lr = learning_rate(t.lr_scheduler, t.learning_rate(), warmup, total, step);
        let finite = loss.is_finite() && grad_norm.is_finite();
        if !finite && t.nonfinite == NonFinitePolicy::Fail {
            bail!(
                "step {}: the loss ({loss}) or gradient norm ({grad_norm}) is not finite; lower \
                 training.learning_rate ({}) or, with adapters, lora.alpha ({}), or set training.nonfinite: skip \
                 to skip such steps",
                step + 1,
                show(t.learning_rate()),
                show(config.lora.alpha)
            );
        }
        if finite {
            let coefficient = if t.max_grad_norm > 0.0 {
                clip_coefficient(grad_norm, t.max_grad_norm)
            } else {
                1.0
            };
            part.step(shards, coefficient, lr)?;
            part.apply(model, comm)?;
        } else if leader {
            tracing::warn!(
                "step {}: non-finite loss or gradients, update skipped",
                step + 1
            );
        }
        state.step += 1;
        state.train_seconds = prior_seconds + started.elapsed().as_secs_f64();
        let secs = tick.elapsed().as_secs_f64();
        let record = StepRecord {
            step: state.step,
            epoch: state.step as f64 / steps_per_epoch as f64,
            loss,
            learning_rate: lr,
            grad_norm,
            tokens,
            tokens_per_second: tokens as f64 / secs.max(1e-9),
            elapsed_seconds: state.train_seconds,
            peak_memory_bytes: crate::report::host::peak_rss_bytes(),
            skipped: !finite,
        };
        if let Some(m) = &mut metrics {
            m.append(&record)?;
        }
        if let Some(r) = recorder.as_deref_mut() {
            r.step(&record)?;
        }
        if let Some(r) = &mut reporter {
            r.step(&record);
        }
        last_loss = Some(loss);
        if (t.save_steps > 0 && state.step.is_multiple_of(t.save_steps)) || state.step == total {
            save(&state, &part, comm)?;
            if let Some(r) = &mut reporter {
                r.checkpoint(state.step);
            }
            saved_step = state.step;
        }
    }
    // Training is over (or stopped): what follows writes checkpoints, adapters or the model.
    if let Some(r) = &reporter {
        r.phase(RunPhase::Exporting, state.step);
        r.finish();
    }
    let finish = if state.step < total {
        if saved_step < state.step {
            save(&state, &part, comm)?;
        }
        if leader {
            tracing::warn!(
                "interrupted after step {}/{total}; checkpoint written, run again to resume",
                state.step
            );
        }
        Finish::Interrupted
    } else {
        Finish::Completed
    };
    let state_bytes = part.state_bytes() + model.resident_bytes();
    part.unshard(model, comm)?;
    Ok(FitOutcome {
        state_bytes,
        finish,
        steps: state.step,
        seconds: state.train_seconds,
        last_loss,
    })
}
