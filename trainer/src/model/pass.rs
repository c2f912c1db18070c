//! Per-pass inputs shared by every layer: batch shape, token positions, the RoPE table, the
//! attention key mask (batched generation) and the LoRA dropout plan (training).

use candle_core::Tensor;
use ferrotune_config::TargetModule;

use crate::kernels::{RopeTable, dropout, dropout_add};

/// LoRA dropout for one micro-batch. Masks depend only on (seed, step, sample, layer, module,
/// token, column), never on batching, so any world size and a resumed run draw the same masks.
#[derive(Debug, Clone)]
pub struct DropoutPlan {
    /// The run's seed.
    pub seed: u64,
    /// One stream per sample of the micro-batch, from [`sample_stream`].
    pub sample_streams: Vec<u64>,
}

/// The dropout stream of one sample at one optimizer step.
pub fn sample_stream(step: u64, sample: u64) -> u64 {
    mix(step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ mix(sample.wrapping_add(0x632B_E59B_D9B4_E019)))
}

/// SplitMix64's finaliser: a bijective 64-bit mix.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Where a linear layer sits: its block and projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Site {
    /// Block index.
    pub layer: usize,
    /// Projection.
    pub module: TargetModule,
}

/// Everything a layer needs to know about the current forward (and backward) pass.
#[derive(Debug)]
pub struct Pass<'a> {
    /// Sequences in the batch.
    pub batch: usize,
    /// Tokens per sequence (rows of a sequence are contiguous: row = b·seq + t).
    pub seq: usize,
    /// Position of every row, for RoPE.
    pub positions: Vec<u32>,
    /// Cos/sin tables.
    pub rope: &'a RopeTable,
    /// (batch, keys) mask of the keys each sequence may attend (generation with left padding).
    pub key_mask: Option<Vec<u8>>,
    /// LoRA dropout (training only).
    pub dropout: Option<DropoutPlan>,
}

impl Pass<'_> {
    /// Rows in the pass (batch · seq).
    pub fn rows(&self) -> usize {
        self.batch * self.seq
    }

    /// Applies (or, for a gradient, re-applies) the LoRA dropout mask of `site` to `x` (rows ×
    /// features), each sequence with its own stream. Identity when `p` is 0 or the pass has no
    /// dropout plan.
    pub fn lora_dropout(&self, x: &Tensor, p: f32, site: Site) -> anyhow::Result<Tensor> {
        Ok(match self.site_streams(p, site) {
            Some((seed, streams)) => dropout(x, p, seed, &streams)?,
            None => x.clone(),
        })
    }

    /// `base + lora_dropout(x)` in one pass.
    pub fn lora_dropout_add(
        &self,
        base: &Tensor,
        x: &Tensor,
        p: f32,
        site: Site,
    ) -> anyhow::Result<Tensor> {
        Ok(match self.site_streams(p, site) {
            Some((seed, streams)) => dropout_add(base, x, p, seed, &streams)?,
            None => (base + x)?,
        })
    }

    /// The seed and per-sequence streams of `site`'s mask, or `None` without dropout.
    fn site_streams(&self, p: f32, site: Site) -> Option<(u64, Vec<u64>)> {
        let plan = self.dropout.as_ref().filter(|_| p > 0.0)?;
        let tag = (site.layer as u64) << 8 | site.module as u64;
        let streams = plan.sample_streams.iter().map(|&s| mix(s ^ tag)).collect();
        Some((plan.seed, streams))
    }
}
