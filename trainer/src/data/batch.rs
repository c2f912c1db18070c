//! Micro-batches: padding, next-token targets, the per-epoch sample order and how each
//! optimizer step's samples are split across micro-batches and ranks.

use super::prompt::Sample;
use super::shuffle::permutation;
use super::split::SUBSET_STREAM;

/// A right-padded micro-batch, row-major `[batch, seq]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Token ids, padded with the pad id.
    pub ids: Vec<u32>,
    /// `targets[b * seq + t]` is the token position t must predict (`ids[b * seq + t + 1]`)
    /// when position t + 1 is a target token of sample b, else -1 (no loss).
    pub targets: Vec<i32>,
    /// Samples in the batch.
    pub batch: usize,
    /// Padded length: the longest sample's.
    pub seq: usize,
    /// Number of targets that are not -1.
    pub n_targets: usize,
}

/// Pads `samples` to the longest of them (dynamic padding) and builds the shifted targets.
pub fn collate(samples: &[&Sample], pad_id: u32) -> Batch {
    let seq = samples.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(samples.len() * seq);
    let mut targets = Vec::with_capacity(samples.len() * seq);
    for sample in samples {
        ids.extend_from_slice(&sample.ids);
        ids.resize(ids.len() + seq - sample.len(), pad_id);
        targets.extend((1..=seq).map(|next| {
            if next >= sample.prompt_len && next < sample.len() {
                sample.ids[next] as i32
            } else {
                -1
            }
        }));
    }
    let n_targets = targets.iter().filter(|&&t| t >= 0).count();
    Batch {
        ids,
        targets,
        batch: samples.len(),
        seq,
        n_targets,
    }
}

/// The order in which epoch `epoch` visits `n` samples: [`permutation`] with the training seed
/// on stream `epoch + 1` (stream 0 chooses the training subset).
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    permutation(n, seed, SUBSET_STREAM + 1 + epoch)
}

/// How an epoch's sample order is cut into optimizer steps, ranks and micro-batches.
///
/// Step s takes the next `global_batch()` = micro × accumulation × world entries of the epoch
/// order, so for a given global batch size the samples of each step do not depend on how it is
/// factored into ranks and accumulation. Rank r takes a contiguous slice of the step: entries
/// [r·m/world, (r+1)·m/world) of its m samples, which it cuts into micro-batches of `micro`.
/// The last step of an epoch keeps the leftover samples (as the Hugging Face Trainer does): it
/// is smaller, its ranks' slices differ by at most one sample, and a rank may get fewer
/// micro-batches than `accumulation`, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLayout {
    /// Samples per micro-batch.
    pub micro: usize,
    /// Micro-batches per optimizer step on each rank.
    pub accumulation: usize,
    /// Number of ranks.
    pub world: usize,
}

impl BatchLayout {
    /// Samples per optimizer step over all ranks.
    pub fn global_batch(&self) -> usize {
        self.micro * self.accumulation * self.world
    }

    /// Optimizer steps in an epoch of `n` samples, the smaller last step included.
    pub fn steps_per_epoch(&self, n: usize) -> usize {
        n.div_ceil(self.global_batch())
    }

    /// The sample indices of step `step` of the epoch whose order is `order`, all ranks.
    pub fn step_samples<'a>(&self, order: &'a [usize], step: usize) -> &'a [usize] {
        let start = (step * self.global_batch()).min(order.len());
        let end = (start + self.global_batch()).min(order.len());
        &order[start..end]
    }

    /// The part of step `step` that rank `rank` trains on.
    pub fn rank_samples<'a>(&self, order: &'a [usize], step: usize, rank: usize) -> &'a [usize] {
        let all = self.step_samples(order, step);
        let m = all.len();
        &all[rank * m / self.world..(rank + 1) * m / self.world]
    }

    /// Micro-batch `k` of rank `rank` in step `step` (empty when the rank has fewer).
    pub fn micro_batch<'a>(
        &self,
        order: &'a [usize],
        step: usize,
        rank: usize,
        k: usize,
    ) -> &'a [usize] {
        self.rank_samples(order, step, rank)
            .chunks(self.micro)
            .nth(k)
            .unwrap_or(&[])
    }

    /// Number of micro-batches rank `rank` runs in step `step`.
    pub fn micro_batches(&self, order: &[usize], step: usize, rank: usize) -> usize {
        self.rank_samples(order, step, rank)
            .len()
            .div_ceil(self.micro)
    }
}
