//! ZeRO's partitioning of a group of tensors: each tensor is padded to a multiple of the world
//! size and cut into `world` equal chunks, rank r owning chunk r of every tensor (as FSDP pads
//! its flat parameters). A rank's shard is its chunks, tensor after tensor; all shards have the
//! same length, so reduce-scatter and all-gather move equal pieces and need no bookkeeping.

use std::ops::Range;

/// Where tensors' chunks lie in each rank's shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardLayout {
    rank: usize,
    world: usize,
    /// (tensor length, chunk length, offset of the chunk in the shard) per tensor.
    slots: Vec<(usize, usize, usize)>,
    shard_len: usize,
}

impl ShardLayout {
    /// The layout of tensors of lengths `lens` for `rank` of `world`.
    pub fn new(lens: impl IntoIterator<Item = usize>, rank: usize, world: usize) -> Self {
        assert!(world >= 1 && rank < world, "rank {rank} of {world}");
        let mut shard_len = 0;
        let slots = lens
            .into_iter()
            .map(|len| {
                let chunk = len.div_ceil(world);
                let slot = (len, chunk, shard_len);
                shard_len += chunk;
                slot
            })
            .collect();
        Self {
            rank,
            world,
            slots,
            shard_len,
        }
    }

    /// Values in each rank's shard (padding included).
    pub fn shard_len(&self) -> usize {
        self.shard_len
    }

    /// Ranks the tensors are split among.
    pub fn world(&self) -> usize {
        self.world
    }

    /// Number of tensors.
    pub fn tensors(&self) -> usize {
        self.slots.len()
    }

    /// Where tensor `i`'s chunk starts in the shard.
    pub fn offset(&self, i: usize) -> usize {
        self.slots[i].2
    }

    /// Length of tensor `i`'s chunk (padding included).
    pub fn chunk(&self, i: usize) -> usize {
        self.slots[i].1
    }

    /// The elements of tensor `i` that `rank` owns (empty for a rank that holds only padding).
    pub fn owned_by(&self, i: usize, rank: usize) -> Range<usize> {
        let (len, chunk, _) = self.slots[i];
        let start = (rank * chunk).min(len);
        start..((rank + 1) * chunk).min(len)
    }

    /// The elements of tensor `i` this rank owns.
    pub fn owned(&self, i: usize) -> Range<usize> {
        self.owned_by(i, self.rank)
    }

    /// Copies this rank's part of tensor `i` (all of it: `full`) into its place in `shard`.
    pub fn take(&self, i: usize, full: &[f32], shard: &mut [f32]) {
        let owned = self.owned(i);
        let at = self.offset(i);
        shard[at..at + owned.len()].copy_from_slice(&full[owned]);
    }

    /// The tensors `full(i)` in the rank-major order reduce-scatter splits: rank 0's chunks of
    /// every tensor, then rank 1's, and so on, padding as zeros. Rank r's part of the sum is
    /// then exactly its shard.
    pub fn pack<'a>(&self, full: impl Fn(usize) -> &'a [f32]) -> Vec<f32> {
        let mut out = vec![0.0; self.shard_len * self.world];
        for i in 0..self.slots.len() {
            let data = full(i);
            for rank in 0..self.world {
                let owned = self.owned_by(i, rank);
                let at = rank * self.shard_len + self.offset(i);
                out[at..at + owned.len()].copy_from_slice(&data[owned]);
            }
        }
        out
    }

    /// Splits an all-gathered buffer (every rank's shard, in rank order) back into tensors.
    pub fn unpack(&self, gathered: &[f32]) -> Vec<Vec<f32>> {
        assert_eq!(gathered.len(), self.shard_len * self.world);
        (0..self.slots.len())
            .map(|i| {
                let mut full = Vec::with_capacity(self.slots[i].0);
                for rank in 0..self.world {
                    let at = rank * self.shard_len + self.offset(i);
                    full.extend_from_slice(&gathered[at..at + self.owned_by(i, rank).len()]);
                }
                full
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_then_unpack_round_trips_and_shards_tile_each_tensor() {
        let lens = [1usize, 5, 8, 3];
        let tensors: Vec<Vec<f32>> = lens
            .iter()
            .enumerate()
            .map(|(t, &n)| (0..n).map(|k| (t * 100 + k) as f32).collect())
            .collect();
        for world in 1..=4 {
            let layouts: Vec<_> = (0..world)
                .map(|r| ShardLayout::new(lens, r, world))
                .collect();
            let packed = layouts[0].pack(|i| &tensors[i]);
            // Concatenating every rank's own shard gives the packed buffer.
            let mut concat = Vec::new();
            for l in &layouts {
                let mut shard = vec![0.0; l.shard_len()];
                for (i, t) in tensors.iter().enumerate() {
                    l.take(i, t, &mut shard);
                }
                concat.extend(shard);
            }
            assert_eq!(concat, packed, "world {world}");
            assert_eq!(layouts[world - 1].unpack(&packed), tensors, "world {world}");
            for (i, &n) in lens.iter().enumerate() {
                let owned: usize = layouts.iter().map(|l| l.owned(i).len()).sum();
                assert_eq!(owned, n);
            }
        }
    }
}
