//! 8-bit blockwise quantisation with bitsandbytes' signed dynamic code map: the format of
//! QLoRA's double-quantised block scales (and of 8-bit optimizer state).
//!
//! Each block of values is scaled by its absolute maximum into [-1, 1] and every value becomes
//! the index of a code in a fixed 256-entry map that is dense near zero. Rounding follows
//! bitsandbytes' CPU kernel bit for bit: the scaled value selects one of 65536 equal bins of
//! [-1, 1], and each bin holds the map entry nearest to its centre.

use std::sync::OnceLock;

use rayon::prelude::*;

/// Number of bins of [-1, 1] in the rounding table.
const BINS: usize = 65536;

/// Blocks handed to one rayon task.
const BLOCKS_PER_TASK: usize = 64;

/// bitsandbytes' signed 8-bit dynamic map (`create_dynamic_map(signed=True)`): 256 sorted codes
/// from -0.99297 to 1.0, including 0. Built once.
pub fn dynamic_map() -> &'static [f32; 256] {
    static MAP: OnceLock<[f32; 256]> = OnceLock::new();
    MAP.get_or_init(build_dynamic_map)
}

/// Builds the map: for exponents 10^-6 ..= 10^0, the midpoints of 2^i + 1 evenly spaced points
/// of [0.1, 1] times the power of ten, with both signs; then 0 and 1.
///
/// The spacing is computed as torch's `linspace` does on x86 CPUs with AVX2 or AVX-512
/// (`start + step * i` from the nearer end, fused into one multiply-add), in f32.
fn build_dynamic_map() -> [f32; 256] {
    // Python evaluates 10 ** k in f64; torch rounds the scalar to f32 before multiplying.
    const POWERS: [f64; 7] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1e0];
    let mut values = Vec::with_capacity(256);
    for (i, power) in POWERS.iter().enumerate() {
        let bounds = linspace_f32(0.1, 1.0, (1 << i) + 1);
        for pair in bounds.windows(2) {
            let value = *power as f32 * ((pair[0] + pair[1]) / 2.0);
            values.push(value);
            values.push(-value);
        }
    }
    values.push(0.0);
    values.push(1.0);
    values.sort_by(f32::total_cmp);
    values.try_into().expect("the dynamic map has 256 codes")
}

/// torch.linspace(start, end, steps, dtype=float32) as computed by its vectorised CPU kernels.
fn linspace_f32(start: f64, end: f64, steps: usize) -> Vec<f32> {
    let (start, end) = (start as f32, end as f32);
    let step = (end - start) / (steps - 1) as f32;
    let halfway = steps / 2;
    (0..steps)
        .map(|i| {
            if i < halfway {
                step.mul_add(i as f32, start)
            } else {
                (-step).mul_add((steps - i - 1) as f32, end)
            }
        })
        .collect()
}

/// For each of the 65536 bins of [-1, 1], the index of the map code nearest to the bin's centre
/// (the lower code on a tie).
fn bin_codes() -> &'static [u8; BINS] {
    static TABLE: OnceLock<Box<[u8; BINS]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let map = dynamic_map();
        let midpoints: Vec<f32> = map
            .windows(2)
            .map(|pair| 0.5 * (pair[0] + pair[1]))
            .collect();
        let mut table = Box::new([0u8; BINS]);
        let mut code = 0;
        for (bin, slot) in table.iter_mut().enumerate() {
            let centre = (2.0 * bin as f32) / (BINS - 1) as f32 - 1.0;
            while code < midpoints.len() && midpoints[code] < centre {
                code += 1;
            }
            *slot = code as u8;
        }
        table
    })
}

/// The bin of [-1, 1] that a value scaled by its block's absmax falls into.
fn bin_of(scaled: f32) -> usize {
    let unit = (scaled.clamp(-1.0, 1.0) + 1.0) * 0.5;
    unit.mul_add((BINS - 1) as f32, 0.5) as usize
}

/// Quantises `data` in blocks of `block_size` values (the last block may be shorter). Returns one
/// code per value and one absmax per block; an all-zero block gets absmax 0 and codes 0.
pub fn quantize_blockwise(data: &[f32], block_size: usize) -> (Vec<u8>, Vec<f32>) {
    assert!(block_size > 0, "block size must be positive");
    let table = bin_codes();
    let mut codes = vec![0u8; data.len()];
    let mut absmax = vec![0f32; data.len().div_ceil(block_size)];
    data.par_chunks(block_size * BLOCKS_PER_TASK)
        .zip(codes.par_chunks_mut(block_size * BLOCKS_PER_TASK))
        .zip(absmax.par_chunks_mut(BLOCKS_PER_TASK))
        .for_each(|((data, codes), absmax)| {
            for ((block, out), block_absmax) in data
                .chunks(block_size)
                .zip(codes.chunks_mut(block_size))
                .zip(absmax.iter_mut())
            {
                let max = block.iter().fold(0f32, |max, x| max.max(x.abs()));
                *block_absmax = max;
                if max == 0.0 {
                    continue;
                }
                let inverse = 1.0 / max;
                for (code, &x) in out.iter_mut().zip(block) {
                    *code = table[bin_of(x * inverse)];
                }
            }
        });
    (codes, absmax)
}

/// Undoes [`quantize_blockwise`]: `out[i] = map[codes[i]] * absmax[i / block_size]`.
///
/// `out` must be as long as `codes`, and `absmax` must hold one value per block.
pub fn dequantize_blockwise(codes: &[u8], absmax: &[f32], block_size: usize, out: &mut [f32]) {
    assert!(block_size > 0, "block size must be positive");
    assert_eq!(codes.len(), out.len(), "one output per code");
    assert_eq!(
        absmax.len(),
        codes.len().div_ceil(block_size),
        "one absmax per block"
    );
    let map = dynamic_map();
    for ((codes, out), &scale) in codes
        .chunks(block_size)
        .zip(out.chunks_mut(block_size))
        .zip(absmax)
    {
        for (value, &code) in out.iter_mut().zip(codes) {
            *value = map[code as usize] * scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn map_is_sorted_signed_and_bounded() {
        let map = dynamic_map();
        assert!(map.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(map[255], 1.0);
        assert!(map.contains(&0.0));
        assert!(map[0] > -1.0 && map[0] < -0.99);
        // Every negative code but the extremes mirrors a positive one.
        let negatives = map.iter().filter(|&&x| x < 0.0).count();
        assert_eq!(negatives, 127);
        assert!(map.iter().filter(|&&x| x < 0.0).all(|x| map.contains(&-x)));
    }

    #[test]
    fn codes_are_near_their_values() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let data: Vec<f32> = (0..1000).map(|_| rng.random_range(-1.0..1.0)).collect();
        let (codes, absmax) = quantize_blockwise(&data, 256);
        let mut back = vec![0f32; data.len()];
        dequantize_blockwise(&codes, &absmax, 256, &mut back);
        for (x, y) in data.iter().zip(&back) {
            assert!((x - y).abs() <= 0.01, "{x} came back as {y}");
        }
    }

    #[test]
    fn zero_block_has_zero_scale() {
        let mut data = vec![0.5f32; 300];
        data[256..].fill(0.0);
        let (codes, absmax) = quantize_blockwise(&data, 256);
        assert_eq!(absmax, vec![0.5, 0.0]);
        assert!(codes[256..].iter().all(|&c| c == 0));
        assert_eq!(dynamic_map()[codes[0] as usize], 1.0);
    }
}
