//! Deterministic shuffles. An order depends only on the seed and the stream: never on the
//! platform, the thread count, or a sampling algorithm a dependency may change.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// A permutation of `0..n`.
///
/// The generator is ChaCha8 seeded with `SeedableRng::seed_from_u64(seed)` and set to stream
/// `stream`. Fisher–Yates runs from the last position down to 1, swapping position i with a
/// position j uniform in [0, i], drawn from one 64-bit output by Lemire's multiply-and-reject
/// method (an output is redrawn only when the low half of the product falls below 2^64 mod (i+1)).
pub fn permutation(n: usize, seed: u64, stream: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = uniform_below(&mut rng, i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

/// A uniform integer in [0, bound), bound > 0.
fn uniform_below(rng: &mut ChaCha8Rng, bound: u64) -> u64 {
    let threshold = bound.wrapping_neg() % bound;
    loop {
        let product = u128::from(rng.next_u64()) * u128::from(bound);
        if product as u64 >= threshold {
            return (product >> 64) as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_matches_an_independent_implementation() {
        // From tests/fixtures/data/shuffle_reference.py, written from the description above.
        // These orders decide every user's training subset: they must never change.
        assert_eq!(permutation(10, 42, 0), [9, 7, 2, 5, 0, 1, 4, 3, 8, 6]);
        assert_eq!(permutation(10, 42, 1), [8, 2, 4, 6, 9, 0, 5, 3, 1, 7]);
        assert_eq!(permutation(10, 43, 0), [9, 4, 2, 7, 1, 8, 3, 6, 5, 0]);
        assert_eq!(
            permutation(300, 42, 0)[..8],
            [238, 173, 37, 81, 196, 234, 0, 292]
        );
        assert!(permutation(0, 42, 0).is_empty());
        assert_eq!(permutation(1, 42, 0), [0]);
    }

    #[test]
    fn every_position_is_equally_likely() {
        // 6000 shuffles of 6 items: each item lands in each position ~1000 times. A biased
        // shuffle (e.g. j drawn from [0, n) instead of [0, i]) fails this by a wide margin.
        let n = 6;
        let mut counts = vec![[0u32; 6]; n];
        for stream in 0..6000 {
            for (pos, &item) in permutation(n, 7, stream).iter().enumerate() {
                counts[item][pos] += 1;
            }
        }
        let chi2: f64 = counts
            .iter()
            .flatten()
            .map(|&c| (f64::from(c) - 1000.0).powi(2) / 1000.0)
            .sum();
        // 25 degrees of freedom: P(chi2 > 52.6) = 0.001.
        assert!(chi2 < 52.6, "chi2 = {chi2}, counts = {counts:?}");
    }
}
