//! Counter-based dropout: whether an element is kept is a pure function of
//! `(seed, stream, index, p)`, so a mask is reproduced exactly on resume, at any world size and on
//! any device, without storing it.
//!
//! The hash: `key = mix(seed ^ mix(stream))`, then `bits = mix(key + (index + 1) · γ)` (the
//! `index`-th output of a SplitMix64 generator whose state starts at `key`), where
//! `γ = 0x9E3779B97F4A7C15` and `mix` is SplitMix64's finaliser. The top 24 bits of `bits` give
//! `u = (bits >> 40) / 2^24` in `[0, 1)`, and the element is kept iff `u >= p`.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::cpu::{self, read};
use super::{KernelError, Result};

/// SplitMix64's state increment (2^64 / golden ratio).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// SplitMix64's output finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The per-(seed, stream) key of the hash.
fn key(seed: u64, stream: u64) -> u64 {
    mix(seed ^ mix(stream))
}

/// The keep decision for element `index` once the key is known.
fn keep_with_key(key: u64, index: u64, p: f32) -> bool {
    let bits = mix(key.wrapping_add(index.wrapping_add(1).wrapping_mul(GAMMA)));
    (bits >> 40) as f32 * (1.0 / (1u64 << 24) as f32) >= p
}

/// Whether dropout with probability `p` keeps element `index` of stream `stream` under `seed`
/// (the hash is in the module docs).
pub fn dropout_keep(seed: u64, stream: u64, index: u64, p: f32) -> bool {
    keep_with_key(key(seed, stream), index, p)
}

/// Inverted dropout of `x`, whose rows form `streams.len()` equal segments (one per sequence):
/// element `i` of segment `s`, counted from the segment's start, becomes `x · (1 / (1 − p))` if
/// [`dropout_keep`]`(seed, streams[s], i, p)`, else 0. `p` must be in `[0, 1)`.
pub fn dropout(x: &Tensor, p: f32, seed: u64, streams: &[u64]) -> Result<Tensor> {
    apply("dropout", None, x, p, seed, streams)
}

/// `base + dropout(x, p, seed, streams)` in one pass (`base` of the shape of `x`).
pub fn dropout_add(
    base: &Tensor,
    x: &Tensor,
    p: f32,
    seed: u64,
    streams: &[u64],
) -> Result<Tensor> {
    if base.shape() != x.shape() {
        return Err(candle_core::Error::ShapeMismatchBinaryOp {
            lhs: base.shape().clone(),
            rhs: x.shape().clone(),
            op: "dropout_add",
        }
        .into());
    }
    apply("dropout_add", Some(base), x, p, seed, streams)
}

/// Gradient of [`dropout`] for `dy`: the same masks and scale, recomputed from the same arguments.
pub fn dropout_backward(dy: &Tensor, p: f32, seed: u64, streams: &[u64]) -> Result<Tensor> {
    apply("dropout_backward", None, dy, p, seed, streams)
}

fn apply(
    kernel: &'static str,
    base: Option<&Tensor>,
    x: &Tensor,
    p: f32,
    seed: u64,
    streams: &[u64],
) -> Result<Tensor> {
    if !(0.0..1.0).contains(&p) {
        return Err(KernelError::Argument {
            kernel,
            detail: format!("dropout probability must be in [0, 1), got {p}"),
        });
    }
    let rows = x.dims().first().copied().unwrap_or(1);
    if streams.is_empty() || rows % streams.len() != 0 {
        return Err(KernelError::Argument {
            kernel,
            detail: format!(
                "{} streams do not split {rows} rows into equal segments",
                streams.len()
            ),
        });
    }
    // Elements per segment (at least 1, so an empty tensor still splits into chunks).
    let seg = (x.elem_count() / streams.len()).max(1);
    let keys: Vec<u64> = streams.iter().map(|&s| key(seed, s)).collect();
    match x.device() {
        Device::Cpu => {
            let xs = read(kernel, "x", x)?;
            let has_base = base.is_some();
            let mut y = match base {
                Some(b) => read(kernel, "base", b)?.to_vec(),
                None => vec![0.0f32; xs.len()],
            };
            let scale = 1.0 / (1.0 - p);
            // Chunks never straddle a segment: each lies in one sequence's block.
            let chunk = CHUNK.min(seg);
            y.par_chunks_mut(seg)
                .zip(xs.par_chunks(seg))
                .zip(&keys)
                .flat_map(|((y, x), &key)| {
                    y.par_chunks_mut(chunk)
                        .zip(x.par_chunks(chunk))
                        .enumerate()
                        .map(move |(c, pair)| (key, c, pair))
                })
                .for_each(|(key, c, (y, x))| {
                    let start = (c * chunk) as u64;
                    for (i, (y, x)) in y.iter_mut().zip(x).enumerate() {
                        if keep_with_key(key, start + i as u64, p) {
                            *y = if has_base { *y + x * scale } else { x * scale };
                        }
                    }
                });
            cpu::tensor(y, x.shape())
        }
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => super::cuda::dropout(base, x, p, seg, &keys),
        device => Err(cpu::unsupported(kernel, device)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_generator() {
        // First outputs of Vigna's splitmix64.c seeded with 0 (and 1234567): state += γ, then mix.
        assert_eq!(mix(GAMMA), 0xE220_A839_7B1D_CDAF);
        assert_eq!(mix(GAMMA.wrapping_mul(2)), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(mix(1_234_567u64.wrapping_add(GAMMA)), 0x599E_D017_FB08_FC85);
    }

    #[test]
    fn keep_rate_and_independence_of_streams() {
        let n = 200_000u64;
        let p = 0.3;
        let kept = (0..n).filter(|&i| dropout_keep(7, 11, i, p)).count() as f64 / n as f64;
        // Binomial standard deviation is about 0.001 here.
        assert!((kept - 0.7).abs() < 0.005, "kept fraction {kept}");
        let agree = (0..n)
            .filter(|&i| dropout_keep(7, 11, i, p) == dropout_keep(7, 12, i, p))
            .count() as f64;
        // Independent masks agree with probability 0.7² + 0.3² = 0.58.
        assert!(
            (agree / n as f64 - 0.58).abs() < 0.01,
            "agreement {}",
            agree / n as f64
        );
        assert!(
            (0..n).all(|i| dropout_keep(1, 2, i, 0.0)),
            "p = 0 keeps everything"
        );
    }
}
