//! 4-bit NormalFloat (NF4) with double-quantised block scales: the frozen base weights of QLoRA,
//! stored exactly as bitsandbytes stores them (`quantize_4bit(x, blocksize=64, quant_type="nf4",
//! compress_statistics=True)`), so that quantised bytes can be compared bit for bit.
//!
//! Layout, for `n` values in row-major order:
//! - `packed`: `ceil(n / 2)` bytes, two 4-bit indices into [`NF4_CODE`] per byte, the first value
//!   in the high nibble. An odd count is padded with the code of 0.0 (7).
//! - one absmax per block of [`BLOCK_SIZE`] values (the last block may be shorter), stored double
//!   quantised: `absmax_offset` is their mean, and `absmax - offset` is quantised to 8-bit codes
//!   ([`super::dynamic`]) in blocks of [`ABSMAX_BLOCK_SIZE`], each with an f32 `absmax_scale`.
//!
//! A value dequantises to `NF4_CODE[q] * (dynamic_map[c] * absmax_scale + absmax_offset)`.

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use thiserror::Error;

use super::dynamic::{dequantize_blockwise, quantize_blockwise};

/// Values per NF4 block (one absmax each).
pub const BLOCK_SIZE: usize = 64;

/// Block absmaxes per block of the second (8-bit) quantisation.
pub const ABSMAX_BLOCK_SIZE: usize = 256;

/// The 16 NF4 values, in code order: quantiles of N(0, 1) normalised to [-1, 1], with an exact 0
/// (QLoRA, Dettmers et al. 2023, appendix E).
pub const NF4_CODE: [f32; 16] = [
    -1.0,
    -0.696_192_8,
    -0.525_073_05,
    -0.394_917_5,
    -0.284_441_38,
    -0.184_773_43,
    -0.091_050_036,
    0.0,
    0.079_580_3,
    0.160_930_2,
    0.246_112_3,
    0.337_915_24,
    0.440_709_83,
    0.562_617,
    0.722_956_84,
    1.0,
];

/// The NF4 code of 0.0, used to pad an odd count.
const ZERO_CODE: u8 = 7;

/// The smallest absmax a block is divided by (bitsandbytes' clamp).
const MIN_ABSMAX: f32 = 1e-38;

/// Values dequantised by one rayon task: one block of absmax codes.
const VALUES_PER_TASK: usize = BLOCK_SIZE * ABSMAX_BLOCK_SIZE;

/// What can be wrong with the input of [`Nf4Tensor`]'s constructors.
#[derive(Debug, Error)]
pub enum Nf4Error {
    /// The shape's product overflows `usize`.
    #[error("shape {shape:?} has more elements than this machine can address")]
    ShapeTooLarge { shape: Vec<usize> },
    /// The data's length is not the product of the shape.
    #[error("shape {shape:?} holds {expected} values, but {actual} were given")]
    ShapeMismatch {
        shape: Vec<usize>,
        expected: usize,
        actual: usize,
    },
    /// A weight is NaN or infinite.
    #[error("the value at flat index {index} is {value}: NF4 quantisation needs finite values")]
    NonFinite { index: usize, value: f32 },
    /// A stored part has the wrong length for the shape.
    #[error("NF4 part `{part}` has {actual} entries, but shape {shape:?} needs {expected}")]
    PartLength {
        part: &'static str,
        shape: Vec<usize>,
        expected: usize,
        actual: usize,
    },
    /// A stored scale or the offset is NaN or infinite.
    #[error("NF4 part `{part}` has the non-finite value {value} at index {index}")]
    NonFiniteScale {
        part: &'static str,
        index: usize,
        value: f32,
    },
    /// The output buffer of a dequantisation has the wrong length.
    #[error("cannot dequantise {expected} values into a buffer of {actual}")]
    OutputLength { expected: usize, actual: usize },
    /// Converting to or from a candle tensor failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// A tensor quantised to NF4 with double-quantised block scales (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Nf4Tensor {
    shape: Vec<usize>,
    numel: usize,
    packed: Vec<u8>,
    absmax_codes: Vec<u8>,
    absmax_scale: Vec<f32>,
    absmax_offset: f32,
}

impl Nf4Tensor {
    /// Quantises row-major `data` of the given shape.
    ///
    /// The offset is the mean of the block absmaxes, summed in f64 and rounded once to f32.
    /// (bitsandbytes takes torch's f32 mean, whose last bits depend on the machine's SIMD width
    /// and thread count; [`quantize_block_scales`] takes any offset.)
    pub fn quantize(data: &[f32], shape: &[usize]) -> Result<Self, Nf4Error> {
        let numel = numel_of(shape)?;
        if numel != data.len() {
            return Err(Nf4Error::ShapeMismatch {
                shape: shape.to_vec(),
                expected: numel,
                actual: data.len(),
            });
        }
        if let Some((index, &value)) = data.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(Nf4Error::NonFinite { index, value });
        }
        let (packed, absmax) = quantize_blocks(data);
        let offset = mean(&absmax);
        let (absmax_codes, absmax_scale) = quantize_block_scales(&absmax, offset);
        Ok(Self {
            shape: shape.to_vec(),
            numel,
            packed,
            absmax_codes,
            absmax_scale,
            absmax_offset: offset,
        })
    }

    /// Quantises a candle tensor of any float dtype, on any device.
    pub fn from_tensor(tensor: &Tensor) -> Result<Self, Nf4Error> {
        let data = tensor
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Self::quantize(&data, tensor.dims())
    }

    /// Reassembles a tensor from stored parts (a checkpoint, a GPU copy), checking that every
    /// part has the length the shape needs and that the scales are finite.
    pub fn from_parts(
        shape: Vec<usize>,
        packed: Vec<u8>,
        absmax_codes: Vec<u8>,
        absmax_scale: Vec<f32>,
        absmax_offset: f32,
    ) -> Result<Self, Nf4Error> {
        let numel = numel_of(&shape)?;
        let blocks = numel.div_ceil(BLOCK_SIZE);
        let check = |part, expected, actual| {
            if expected == actual {
                Ok(())
            } else {
                Err(Nf4Error::PartLength {
                    part,
                    shape: shape.clone(),
                    expected,
                    actual,
                })
            }
        };
        check("packed", numel.div_ceil(2), packed.len())?;
        check("absmax_codes", blocks, absmax_codes.len())?;
        check(
            "absmax_scale",
            blocks.div_ceil(ABSMAX_BLOCK_SIZE),
            absmax_scale.len(),
        )?;
        if let Some((index, &value)) = absmax_scale
            .iter()
            .enumerate()
            .find(|(_, v)| !v.is_finite())
        {
            return Err(Nf4Error::NonFiniteScale {
                part: "absmax_scale",
                index,
                value,
            });
        }
        if !absmax_offset.is_finite() {
            return Err(Nf4Error::NonFiniteScale {
                part: "absmax_offset",
                index: 0,
                value: absmax_offset,
            });
        }
        Ok(Self {
            shape,
            numel,
            packed,
            absmax_codes,
            absmax_scale,
            absmax_offset,
        })
    }

    /// The logical shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of values.
    pub fn numel(&self) -> usize {
        self.numel
    }

    /// Two 4-bit codes per byte, first value in the high nibble.
    pub fn packed(&self) -> &[u8] {
        &self.packed
    }

    /// One 8-bit code per block of [`BLOCK_SIZE`] values.
    pub fn absmax_codes(&self) -> &[u8] {
        &self.absmax_codes
    }

    /// One f32 scale per [`ABSMAX_BLOCK_SIZE`] absmax codes.
    pub fn absmax_scale(&self) -> &[f32] {
        &self.absmax_scale
    }

    /// The mean subtracted from the block absmaxes before their quantisation.
    pub fn absmax_offset(&self) -> f32 {
        self.absmax_offset
    }

    /// Bytes held by the quantised form: about 0.5 + 1/64 + 4/(64·256) per value, plus the offset.
    pub fn storage_bytes(&self) -> usize {
        self.packed.len()
            + self.absmax_codes.len()
            + size_of_val(self.absmax_scale.as_slice())
            + size_of::<f32>()
    }

    /// The dequantised absmax of every block of [`BLOCK_SIZE`] values.
    pub fn block_absmax(&self) -> Vec<f32> {
        let mut absmax = vec![0f32; self.absmax_codes.len()];
        self.block_absmax_into(0, &mut absmax);
        absmax
    }

    /// Writes the absmaxes of the blocks `first..first + out.len()`.
    fn block_absmax_into(&self, first: usize, out: &mut [f32]) {
        debug_assert_eq!(first % ABSMAX_BLOCK_SIZE, 0);
        let codes = &self.absmax_codes[first..first + out.len()];
        let scales = &self.absmax_scale
            [first / ABSMAX_BLOCK_SIZE..(first + out.len()).div_ceil(ABSMAX_BLOCK_SIZE)];
        dequantize_blockwise(codes, scales, ABSMAX_BLOCK_SIZE, out);
        for value in out {
            *value += self.absmax_offset;
        }
    }

    /// The dequantised values, row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.numel];
        self.dequantize_into(&mut out)
            .expect("the buffer has numel values");
        out
    }

    /// Dequantises into `out`, which must hold [`Self::numel`] values. Runs on rayon's pool.
    pub fn dequantize_into(&self, out: &mut [f32]) -> Result<(), Nf4Error> {
        if out.len() != self.numel {
            return Err(Nf4Error::OutputLength {
                expected: self.numel,
                actual: out.len(),
            });
        }
        out.par_chunks_mut(VALUES_PER_TASK)
            .zip(self.packed.par_chunks(VALUES_PER_TASK / 2))
            .enumerate()
            .for_each(|(task, (out, packed))| {
                let mut absmax = [0f32; ABSMAX_BLOCK_SIZE];
                let absmax = &mut absmax[..out.len().div_ceil(BLOCK_SIZE)];
                self.block_absmax_into(task * ABSMAX_BLOCK_SIZE, absmax);
                for ((out, packed), &scale) in out
                    .chunks_mut(BLOCK_SIZE)
                    .zip(packed.chunks(BLOCK_SIZE / 2))
                    .zip(absmax.iter())
                {
                    dequantize_block(packed, scale, out);
                }
            });
        Ok(())
    }

    /// The dequantised values as an f32 tensor of this shape on `device`.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor, Nf4Error> {
        Ok(Tensor::from_vec(
            self.dequantize(),
            self.shape.as_slice(),
            device,
        )?)
    }
}

/// The number of elements of `shape`.
fn numel_of(shape: &[usize]) -> Result<usize, Nf4Error> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| Nf4Error::ShapeTooLarge {
            shape: shape.to_vec(),
        })
}

/// Mean of the block absmaxes, accumulated in f64 (0 when there are none).
fn mean(values: &[f32]) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    (values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64) as f32
}

/// The first NF4 step: packs a 4-bit code per value and returns the absmax of every block.
///
/// A full block is scaled by `x * (1 / absmax)`, with absmax clamped to 1e-38 for the division
/// only; the last, partial block is scaled by `x / absmax` and keeps the clamped absmax. Each
/// scaled value takes the code of the nearest NF4 value (the lower one on a tie). All as
/// bitsandbytes' CPU path.
pub fn quantize_blocks(data: &[f32]) -> (Vec<u8>, Vec<f32>) {
    let full = data.len() / BLOCK_SIZE;
    let mut packed = vec![0u8; data.len().div_ceil(2)];
    let mut absmax = vec![0f32; data.len().div_ceil(BLOCK_SIZE)];
    let (full_data, tail_data) = data.split_at(full * BLOCK_SIZE);
    let (full_packed, tail_packed) = packed.split_at_mut(full * BLOCK_SIZE / 2);
    full_data
        .par_chunks_exact(BLOCK_SIZE)
        .zip(full_packed.par_chunks_exact_mut(BLOCK_SIZE / 2))
        .zip(absmax[..full].par_iter_mut())
        .for_each(|((block, packed), absmax)| {
            *absmax = block_absmax(block);
            let inverse = 1.0 / absmax.max(MIN_ABSMAX);
            pack_codes(block, |x| x * inverse, packed);
        });
    if !tail_data.is_empty() {
        let tail_absmax = block_absmax(tail_data).max(MIN_ABSMAX);
        absmax[full] = tail_absmax;
        pack_codes(tail_data, |x| x / tail_absmax, tail_packed);
    }
    (packed, absmax)
}

/// The second NF4 step (double quantisation): `absmax - offset` to 8-bit dynamic codes in blocks
/// of [`ABSMAX_BLOCK_SIZE`], with one f32 scale per block.
pub fn quantize_block_scales(absmax: &[f32], offset: f32) -> (Vec<u8>, Vec<f32>) {
    let centred: Vec<f32> = absmax.iter().map(|&a| a - offset).collect();
    quantize_blockwise(&centred, ABSMAX_BLOCK_SIZE)
}

fn block_absmax(block: &[f32]) -> f32 {
    block.iter().fold(0f32, |max, x| max.max(x.abs()))
}

/// Midpoints between consecutive NF4 values, as bitsandbytes computes them in f32.
const NF4_MIDPOINTS: [f32; 15] = {
    let mut midpoints = [0f32; 15];
    let mut i = 0;
    while i < 15 {
        midpoints[i] = (NF4_CODE[i] + NF4_CODE[i + 1]) / 2.0;
        i += 1;
    }
    midpoints
};

/// The NF4 code of a value scaled into [-1, 1]: how many midpoints lie strictly below it
/// (a branch-free binary search over the 15 sorted midpoints).
fn nf4_code(scaled: f32) -> u8 {
    let mut code = 0;
    for step in [8, 4, 2, 1] {
        code += step * usize::from(NF4_MIDPOINTS[code + step - 1] < scaled);
    }
    code as u8
}

/// Writes the codes of `block` (after `scale`) two per byte; an odd tail is padded with 0.0.
fn pack_codes(block: &[f32], scale: impl Fn(f32) -> f32, packed: &mut [u8]) {
    let mut pairs = block.chunks_exact(2);
    for (byte, pair) in packed.iter_mut().zip(&mut pairs) {
        *byte = (nf4_code(scale(pair[0])) << 4) | nf4_code(scale(pair[1]));
    }
    if let [last] = pairs.remainder() {
        packed[block.len() / 2] = (nf4_code(scale(*last)) << 4) | ZERO_CODE;
    }
}

/// The NF4 values of the two codes in every possible byte (high nibble first).
static NF4_PAIRS: [[f32; 2]; 256] = {
    let mut pairs = [[0f32; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        pairs[byte] = [NF4_CODE[byte >> 4], NF4_CODE[byte & 0x0f]];
        byte += 1;
    }
    pairs
};

/// Dequantises one block: `out[i] = NF4_CODE[code i] * absmax`.
fn dequantize_block(packed: &[u8], absmax: f32, out: &mut [f32]) {
    let mut octets = out.chunks_exact_mut(8);
    let mut quads = packed.chunks_exact(4);
    for (octet, quad) in (&mut octets).zip(&mut quads) {
        let mut values = [0f32; 8];
        for (k, &byte) in quad.iter().enumerate() {
            [values[2 * k], values[2 * k + 1]] = NF4_PAIRS[usize::from(byte)];
        }
        for (out, value) in octet.iter_mut().zip(values) {
            *out = value * absmax;
        }
    }
    let rest = octets.into_remainder();
    let bytes = &packed[packed.len() - rest.len().div_ceil(2)..];
    for (k, out) in rest.iter_mut().enumerate() {
        *out = NF4_PAIRS[usize::from(bytes[k / 2])][k % 2] * absmax;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midpoints_split_the_code() {
        for (i, &value) in NF4_CODE.iter().enumerate() {
            assert_eq!(usize::from(nf4_code(value)), i);
        }
        // A value on a midpoint takes the lower code.
        assert_eq!(nf4_code(NF4_MIDPOINTS[3]), 3);
        assert_eq!(nf4_code(-2.0), 0);
        assert_eq!(nf4_code(2.0), 15);
    }

    #[test]
    fn odd_count_pads_with_zero_code() {
        let data = [0.5f32, -1.0, 1.0];
        let (packed, absmax) = quantize_blocks(&data);
        assert_eq!(absmax, vec![1.0]);
        assert_eq!(packed, vec![12 << 4, (15 << 4) | ZERO_CODE]);
    }
}
