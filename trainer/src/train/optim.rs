//! AdamW over flat f32 buffers, as `torch.optim.AdamW` computes it (single-tensor path).
//!
//! Trainable parameters, their gradients and the optimizer state are flat `f32` buffers; each
//! parameter is a [`Segment`] of the buffer. An [`AdamW`] owns the state of one contiguous range of
//! the buffer: the whole of it, or one rank's shard under ZeRO. The state lives in host memory, or
//! (DDP on a GPU) on the device, where `kernels::adamw` runs the same update.
//!
//! One step, per element, in torch's order and f32 rounding:
//! ```text
//! p ← p · (1 − lr·wd)                        (decay segments only)
//! m ← m + (1 − β1)·(g − m)                   (torch's lerp; for β1 ≤ 0.5: g − (g − m)·β1)
//! v ← v·β2 + ((1 − β2)·g)·g
//! p ← p + (−lr / (1 − β1^t))·m / (√v / √(1 − β2^t) + ε)
//! ```
//! The scalars are computed in f64 and rounded to f32, as torch does with Python floats. Every f32
//! operation here is rounded once; on the CPU torch fuses the multiply-add of its vectorised lerp
//! (not of its scalar tail) and takes square roots from MKL, which are not correctly rounded. So
//! results agree with torch to a few units in the last place of each step's terms.

use std::ops::Range;

use anyhow::bail;
use candle_core::{Device, Tensor};
use ferrotune_config::TrainingConfig;
use rayon::prelude::*;
use thiserror::Error;

use super::flat::Flat;
use crate::kernels::{self, AdamWStep};

/// Elements updated by one rayon task.
const CHUNK: usize = 1 << 15;

/// One parameter's place in the flat buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// First element, in the full flat buffer.
    pub offset: usize,
    /// Number of elements.
    pub len: usize,
    /// Whether weight decay applies (Hugging Face's Trainer exempts biases and norm weights).
    pub decay: bool,
}

impl Segment {
    /// The elements the segment covers.
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.len
    }
}

/// AdamW's hyperparameters (the learning rate comes with each step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// Decay rate of the first moment.
    pub beta1: f64,
    /// Decay rate of the second moment.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay, applied to segments with `decay`.
    pub weight_decay: f64,
}

impl AdamWConfig {
    /// The optimizer settings of a training config.
    pub fn from_training(config: &TrainingConfig) -> Self {
        Self {
            beta1: config.adam_beta1,
            beta2: config.adam_beta2,
            eps: config.adam_epsilon,
            weight_decay: config.weight_decay,
        }
    }
}

/// A checkpointable copy of the optimizer state.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamWState {
    /// Optimizer steps taken.
    pub step: u64,
    /// First moments, one per element of the range.
    pub exp_avg: Vec<f32>,
    /// Second moments, one per element of the range.
    pub exp_avg_sq: Vec<f32>,
}

/// What is wrong with a step's or a restored state's buffers.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum OptimError {
    /// A buffer does not match the range the optimizer covers.
    #[error("{buffer} has {actual} elements, but the optimizer covers {expected} ({range:?})")]
    Length {
        buffer: &'static str,
        expected: usize,
        actual: usize,
        range: Range<usize>,
    },
    /// Segment `index` starts before the previous one ends.
    #[error("segment {index} ({segment:?}) overlaps or precedes the segment before it")]
    Unordered { index: usize, segment: Range<usize> },
    /// Part of the optimizer's range lies in no segment.
    #[error("elements {gap:?} of the optimizer's range {range:?} belong to no segment")]
    Uncovered {
        gap: Range<usize>,
        range: Range<usize>,
    },
    /// Host slices were passed to an optimizer whose state is on a GPU.
    #[error("the optimizer state is on a GPU: step it with device buffers (AdamW::step_on_device)")]
    OnDevice,
}

/// AdamW with its state for one contiguous range of the flat parameter buffer.
#[derive(Debug, Clone)]
pub struct AdamW {
    config: AdamWConfig,
    range: Range<usize>,
    step: u64,
    exp_avg: Flat,
    exp_avg_sq: Flat,
}

impl AdamW {
    /// A fresh optimizer for a whole buffer of `n` elements, in host memory.
    pub fn new(config: AdamWConfig, n: usize) -> Self {
        Self::for_range(config, 0..n)
    }

    /// A fresh optimizer for the elements `range` of the flat buffer (a ZeRO shard).
    pub fn for_range(config: AdamWConfig, range: Range<usize>) -> Self {
        let n = range.len();
        Self {
            config,
            range,
            step: 0,
            exp_avg: Flat::Host(vec![0.0; n]),
            exp_avg_sq: Flat::Host(vec![0.0; n]),
        }
    }

    /// Restores an optimizer from a checkpointed state for `range`, in host memory.
    pub fn from_state(
        config: AdamWConfig,
        range: Range<usize>,
        state: AdamWState,
    ) -> Result<Self, OptimError> {
        let optimizer = Self {
            config,
            range,
            step: state.step,
            exp_avg: Flat::Host(state.exp_avg),
            exp_avg_sq: Flat::Host(state.exp_avg_sq),
        };
        optimizer.check_len("exp_avg", optimizer.exp_avg.len())?;
        optimizer.check_len("exp_avg_sq", optimizer.exp_avg_sq.len())?;
        Ok(optimizer)
    }

    /// The optimizer with its moments moved to `device` (host memory for the CPU).
    pub fn on(self, device: &Device) -> anyhow::Result<Self> {
        let place = |f: Flat| match f {
            Flat::Host(v) => Flat::from_host(v, device),
            on_device => Ok(on_device),
        };
        Ok(Self {
            exp_avg: place(self.exp_avg)?,
            exp_avg_sq: place(self.exp_avg_sq)?,
            ..self
        })
    }

    /// A host copy of the state, for a checkpoint.
    pub fn state(&self) -> anyhow::Result<AdamWState> {
        Ok(AdamWState {
            step: self.step,
            exp_avg: self.exp_avg.read()?.into_owned(),
            exp_avg_sq: self.exp_avg_sq.read()?.into_owned(),
        })
    }

    /// The elements of the flat buffer this optimizer updates.
    pub fn range(&self) -> Range<usize> {
        self.range.clone()
    }

    /// Optimizer steps taken so far.
    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// The hyperparameters.
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// One AdamW step with learning rate `lr`, in host memory.
    ///
    /// `params` and `grads` hold exactly this optimizer's range. `segments` describe the whole
    /// flat buffer, in order and without overlap; those that meet the range must cover it.
    /// Parallel over chunks; the result does not depend on the thread count.
    pub fn step(
        &mut self,
        params: &mut [f32],
        grads: &[f32],
        segments: &[Segment],
        lr: f64,
    ) -> Result<(), OptimError> {
        self.step_scaled(params, grads, segments, lr, 1.0)
    }

    /// One AdamW step, in place on the GPU, of the device buffers `params` and `grads` (flat
    /// f32, exactly this optimizer's range) with learning rate `lr` and the gradients multiplied
    /// by `grad_scale`; with `shadow` (a flat bf16 buffer as long as `params`), the updated
    /// values rounded to bf16 are written there too. The moments must be on the same GPU
    /// ([`AdamW::on`]). Computes what [`AdamW::step_scaled`] computes, bit for bit.
    #[allow(clippy::too_many_arguments)] // the step's buffers and scalars
    pub fn step_on_device(
        &mut self,
        params: &Tensor,
        shadow: Option<&Tensor>,
        grads: &Tensor,
        segments: &[Segment],
        lr: f64,
        grad_scale: f32,
    ) -> anyhow::Result<()> {
        let (Flat::Device(m), Flat::Device(v)) = (&self.exp_avg, &self.exp_avg_sq) else {
            bail!("the optimizer state is in host memory, the parameters on a GPU");
        };
        self.check_len("params", params.elem_count())?;
        self.check_len("grads", grads.elem_count())?;
        let pieces = self.pieces(segments)?;
        self.step += 1;
        let scalars = scalars(&self.config, self.step, lr, grad_scale);
        // One launch per run of adjacent pieces with the same decay.
        let mut runs: Vec<(Range<usize>, bool)> = Vec::new();
        for (piece, decay) in pieces {
            match runs.last_mut() {
                Some((run, d)) if *d == decay && run.end == piece.start => run.end = piece.end,
                _ => runs.push((piece, decay)),
            }
        }
        for (run, decay) in runs {
            kernels::adamw(
                params,
                shadow,
                grads,
                m,
                v,
                run,
                &with_decay(&scalars, decay),
            )?;
        }
        Ok(())
    }

    /// [`AdamW::step`] with the gradients multiplied by `grad_scale` first (the clipping
    /// coefficient), fused into the update.
    pub fn step_scaled(
        &mut self,
        params: &mut [f32],
        grads: &[f32],
        segments: &[Segment],
        lr: f64,
        grad_scale: f32,
    ) -> Result<(), OptimError> {
        self.check_len("params", params.len())?;
        self.check_len("grads", grads.len())?;
        let pieces = self.pieces(segments)?;
        let (Flat::Host(m), Flat::Host(v)) = (&mut self.exp_avg, &mut self.exp_avg_sq) else {
            return Err(OptimError::OnDevice);
        };
        self.step += 1;
        let scalars = scalars(&self.config, self.step, lr, grad_scale);

        let mut tasks = Vec::new();
        let (mut p, mut g) = (params, grads);
        let (mut m, mut v) = (m.as_mut_slice(), v.as_mut_slice());
        for (piece, decay) in pieces {
            let mut left = piece.len();
            while left > 0 {
                let len = left.min(CHUNK);
                left -= len;
                let (p_head, p_tail) = std::mem::take(&mut p).split_at_mut(len);
                let (g_head, g_tail) = g.split_at(len);
                let (m_head, m_tail) = std::mem::take(&mut m).split_at_mut(len);
                let (v_head, v_tail) = std::mem::take(&mut v).split_at_mut(len);
                tasks.push((p_head, g_head, m_head, v_head, decay));
                (p, g, m, v) = (p_tail, g_tail, m_tail, v_tail);
            }
        }
        tasks
            .into_par_iter()
            .for_each(|(p, g, m, v, decay)| update(&with_decay(&scalars, decay), p, g, m, v));
        Ok(())
    }

    fn check_len(&self, buffer: &'static str, actual: usize) -> Result<(), OptimError> {
        if actual == self.range.len() {
            Ok(())
        } else {
            Err(OptimError::Length {
                buffer,
                expected: self.range.len(),
                actual,
                range: self.range.clone(),
            })
        }
    }

    /// The parts of the range, relative to its start, that each segment covers, in order.
    fn pieces(&self, segments: &[Segment]) -> Result<Vec<(Range<usize>, bool)>, OptimError> {
        let range = &self.range;
        let mut pieces = Vec::new();
        let mut previous_end = 0;
        let mut covered = range.start;
        for (index, segment) in segments.iter().enumerate() {
            if segment.offset < previous_end {
                return Err(OptimError::Unordered {
                    index,
                    segment: segment.range(),
                });
            }
            previous_end = segment.offset + segment.len;
            let start = segment.offset.max(range.start);
            let end = previous_end.min(range.end);
            if start >= end {
                continue;
            }
            if start > covered {
                return Err(OptimError::Uncovered {
                    gap: covered..start,
                    range: range.clone(),
                });
            }
            pieces.push((start - range.start..end - range.start, segment.decay));
            covered = end;
        }
        if covered < range.end {
            return Err(OptimError::Uncovered {
                gap: covered..range.end,
                range: range.clone(),
            });
        }
        Ok(pieces)
    }
}

/// A step's scalars, rounded to f32 as torch rounds Python floats (the decay factor for
/// segments with weight decay).
fn scalars(config: &AdamWConfig, step: u64, lr: f64, grad_scale: f32) -> AdamWStep {
    let step = step as f64;
    let bias_correction1 = 1.0 - config.beta1.powf(step);
    let bias_correction2 = 1.0 - config.beta2.powf(step);
    AdamWStep {
        grad_scale,
        decay_factor: (1.0 - lr * config.weight_decay) as f32,
        lerp_weight: (1.0 - config.beta1) as f32,
        beta2: config.beta2 as f32,
        one_minus_beta2: (1.0 - config.beta2) as f32,
        // Python's `** 0.5`, not sqrt: the same bits as torch's scalar.
        bias_correction2_sqrt: bias_correction2.powf(0.5) as f32,
        eps: config.eps as f32,
        neg_step_size: (-(lr / bias_correction1)) as f32,
    }
}

/// The scalars for a segment with or without weight decay: multiplying by exactly 1 leaves a
/// parameter unchanged, as torch's skipped decay does.
fn with_decay(s: &AdamWStep, decay: bool) -> AdamWStep {
    AdamWStep {
        decay_factor: if decay { s.decay_factor } else { 1.0 },
        ..*s
    }
}

/// The update of one chunk in host memory.
fn update(s: &AdamWStep, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    let w = s.lerp_weight;
    if w < 0.5 {
        update_with(s, p, g, m, v, |m, g| m + w * (g - m));
    } else {
        let keep = 1.0 - w;
        update_with(s, p, g, m, v, |m, g| g - (g - m) * keep);
    }
}

fn update_with(
    s: &AdamWStep,
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    lerp: impl Fn(f32, f32) -> f32,
) {
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = g * s.grad_scale;
        *p *= s.decay_factor;
        *m = lerp(*m, g);
        *v = *v * s.beta2 + s.one_minus_beta2 * g * g;
        let denom = v.sqrt() / s.bias_correction2_sqrt + s.eps;
        *p += s.neg_step_size * *m / denom;
    }
}
