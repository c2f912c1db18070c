//! NF4 with double quantisation against bitsandbytes 0.50.2 (fixtures/nf4/make_fixture.py).

mod common;

use candle_core::{Device, Tensor};
use common::tensors::TensorFile;
use ferrotune::quant::dynamic::dynamic_map;
use ferrotune::quant::nf4::{
    ABSMAX_BLOCK_SIZE, BLOCK_SIZE, NF4_CODE, Nf4Error, Nf4Tensor, quantize_block_scales,
    quantize_blocks,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

fn fixture() -> TensorFile {
    TensorFile::open(common::fixtures().join("nf4/nf4.safetensors"))
}

/// The cases in the fixture (named by their `<case>.input` tensors).
fn cases(file: &TensorFile) -> Vec<String> {
    let mut cases: Vec<String> = file
        .names()
        .iter()
        .filter_map(|n| n.strip_suffix(".input"))
        .map(str::to_owned)
        .collect();
    cases.sort();
    assert_eq!(cases.len(), 4, "fixture cases: {cases:?}");
    cases
}

fn normal(seed: u64, n: usize, std: f32) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| std * Distribution::<f32>::sample(&StandardNormal, &mut rng))
        .collect()
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// Distance in units in the last place between two finite f32 of the same sign.
fn ulps(a: f32, b: f32) -> u32 {
    a.to_bits().abs_diff(b.to_bits())
}

#[test]
fn code_tables_match_the_paper_and_bitsandbytes() {
    // QLoRA (Dettmers et al. 2023), appendix E.
    let paper: [f64; 16] = [
        -1.0,
        -0.6961928009986877,
        -0.5250730514526367,
        -0.39491748809814453,
        -0.28444138169288635,
        -0.18477343022823334,
        -0.09105003625154495,
        0.0,
        0.07958029955625534,
        0.16093020141124725,
        0.24611230194568634,
        0.33791524171829224,
        0.44070982933044434,
        0.5626170039176941,
        0.7229568362236023,
        1.0,
    ];
    assert_eq!(bits(&NF4_CODE), bits(&paper.map(|v| v as f32)));
    let file = fixture();
    assert_eq!(bits(&NF4_CODE), bits(&file.f32("nf4_code")));
    assert_eq!(bits(dynamic_map()), bits(&file.f32("dynamic_map")));
}

#[test]
fn four_bit_codes_and_block_absmax_match_bitsandbytes() {
    let file = fixture();
    for case in cases(&file) {
        let input = file.f32(&format!("{case}.input"));
        let (packed, absmax) = quantize_blocks(&input);
        assert_eq!(
            packed,
            file.u8(&format!("{case}.packed")),
            "{case}: packed codes"
        );
        assert_eq!(absmax.len(), input.len().div_ceil(BLOCK_SIZE), "{case}");
    }
}

#[test]
fn double_quantisation_matches_bitsandbytes_for_its_offset() {
    let file = fixture();
    for case in cases(&file) {
        let (_, absmax) = quantize_blocks(&file.f32(&format!("{case}.input")));
        let offset = file.f32(&format!("{case}.offset"))[0];
        let (codes, scales) = quantize_block_scales(&absmax, offset);
        assert_eq!(
            codes,
            file.u8(&format!("{case}.absmax_codes")),
            "{case}: absmax codes"
        );
        assert_eq!(
            bits(&scales),
            bits(&file.f32(&format!("{case}.absmax_scale"))),
            "{case}: absmax scales"
        );
    }
}

#[test]
fn dequantisation_of_bitsandbytes_parts_is_bit_identical() {
    let file = fixture();
    for case in cases(&file) {
        let tensor = Nf4Tensor::from_parts(
            file.shape(&format!("{case}.input")),
            file.u8(&format!("{case}.packed")),
            file.u8(&format!("{case}.absmax_codes")),
            file.f32(&format!("{case}.absmax_scale")),
            file.f32(&format!("{case}.offset"))[0],
        )
        .unwrap();
        let expected = file.f32(&format!("{case}.dequantized"));
        assert_eq!(
            bits(&tensor.dequantize()),
            bits(&expected),
            "{case}: dequantised values"
        );
    }
}

/// bitsandbytes' offset is torch's f32 mean of the block absmaxes; ours is the f64 mean rounded
/// once, which the fixture shows can differ in the last two bits. Everything downstream of the
/// offset then moves by about as much.
#[test]
fn quantize_end_to_end_matches_bitsandbytes() {
    let file = fixture();
    for case in cases(&file) {
        let input = file.f32(&format!("{case}.input"));
        let shape = file.shape(&format!("{case}.input"));
        let tensor = Nf4Tensor::quantize(&input, &shape).unwrap();
        assert_eq!(tensor.shape(), shape.as_slice());
        assert_eq!(tensor.numel(), input.len());
        assert_eq!(
            tensor.packed(),
            file.u8(&format!("{case}.packed")).as_slice(),
            "{case}"
        );

        let offset = file.f32(&format!("{case}.offset"))[0];
        assert!(
            ulps(tensor.absmax_offset(), offset) <= 2,
            "{case}: offset {} vs {offset}",
            tensor.absmax_offset()
        );
        let codes = file.u8(&format!("{case}.absmax_codes"));
        if tensor.absmax_offset() == offset {
            assert_eq!(tensor.absmax_codes(), codes.as_slice(), "{case}");
            assert_eq!(
                bits(tensor.absmax_scale()),
                bits(&file.f32(&format!("{case}.absmax_scale"))),
                "{case}"
            );
        } else {
            let steps = tensor
                .absmax_codes()
                .iter()
                .zip(&codes)
                .map(|(a, b)| a.abs_diff(*b))
                .max()
                .unwrap();
            assert!(steps <= 1, "{case}: absmax codes differ by {steps} steps");
        }

        let expected = file.f32(&format!("{case}.dequantized"));
        let absmax = tensor.block_absmax();
        for (i, (got, want)) in tensor.dequantize().iter().zip(&expected).enumerate() {
            let tolerance = 1e-5 * absmax[i / BLOCK_SIZE];
            assert!(
                (got - want).abs() <= tolerance,
                "{case}[{i}]: {got} vs bitsandbytes {want}"
            );
        }
    }
}

#[test]
fn normal_weights_reconstruct_with_the_expected_error() {
    let shape = [256, 1024];
    let data = normal(7, shape[0] * shape[1], 1.0);
    let tensor = Nf4Tensor::quantize(&data, &shape).unwrap();
    let back = tensor.dequantize();
    let error: f64 = data
        .iter()
        .zip(&back)
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum();
    let norm: f64 = data.iter().map(|a| f64::from(*a).powi(2)).sum();
    let relative = (error / norm).sqrt();
    // bitsandbytes gives 0.092 on N(0, 1) weights of this size.
    assert!(
        (0.085..0.10).contains(&relative),
        "relative RMS error {relative}"
    );

    let per_value = tensor.storage_bytes() as f64 / data.len() as f64;
    let expected = 0.5 + 1.0 / 64.0 + 4.0 / (64.0 * 256.0) + 4.0 / data.len() as f64;
    assert!(
        (per_value - expected).abs() < 1e-12,
        "{per_value} bytes per value"
    );
}

#[test]
fn sizes_that_are_not_multiples_of_the_blocks() {
    for n in [1, 63, 65, 64 * 256 + 1, 64 * 256 * 2 + 31] {
        let data = normal(n as u64, n, 0.02);
        let tensor = Nf4Tensor::quantize(&data, &[n]).unwrap();
        assert_eq!(tensor.packed().len(), n.div_ceil(2));
        assert_eq!(tensor.absmax_codes().len(), n.div_ceil(BLOCK_SIZE));
        assert_eq!(
            tensor.absmax_scale().len(),
            n.div_ceil(BLOCK_SIZE).div_ceil(ABSMAX_BLOCK_SIZE)
        );
        let back = tensor.dequantize();
        let absmax = tensor.block_absmax();
        for (i, (x, y)) in data.iter().zip(&back).enumerate() {
            // Half the widest NF4 gap, plus the absmax's own quantisation error.
            assert!(
                (x - y).abs() <= 0.17 * absmax[i / BLOCK_SIZE] + 1e-3 * 0.02,
                "n={n} [{i}]: {x} -> {y}"
            );
        }
    }
}

#[test]
fn parts_round_trip_and_dequantize_into() {
    let data = normal(11, 96 * 70, 0.5);
    let tensor = Nf4Tensor::quantize(&data, &[96, 70]).unwrap();
    let again = Nf4Tensor::from_parts(
        tensor.shape().to_vec(),
        tensor.packed().to_vec(),
        tensor.absmax_codes().to_vec(),
        tensor.absmax_scale().to_vec(),
        tensor.absmax_offset(),
    )
    .unwrap();
    assert_eq!(again, tensor);
    let mut out = vec![f32::NAN; data.len()];
    tensor.dequantize_into(&mut out).unwrap();
    assert_eq!(bits(&out), bits(&tensor.dequantize()));
}

#[test]
fn candle_tensors_quantize_and_come_back() {
    let data = normal(12, 48 * 576, 0.02);
    let tensor = Tensor::from_vec(data.clone(), (48, 576), &Device::Cpu).unwrap();
    let quantized = Nf4Tensor::from_tensor(&tensor).unwrap();
    assert_eq!(quantized, Nf4Tensor::quantize(&data, &[48, 576]).unwrap());
    let back = quantized.to_tensor(&Device::Cpu).unwrap();
    assert_eq!(back.dims(), &[48, 576]);
    assert_eq!(
        bits(&back.flatten_all().unwrap().to_vec1::<f32>().unwrap()),
        bits(&quantized.dequantize())
    );
}

#[test]
fn bad_input_is_rejected_with_its_location() {
    let data = normal(13, 128, 1.0);
    let err = Nf4Tensor::quantize(&data, &[3, 40]).unwrap_err();
    assert!(
        matches!(
            err,
            Nf4Error::ShapeMismatch {
                expected: 120,
                actual: 128,
                ..
            }
        ),
        "{err}"
    );

    let mut bad = data.clone();
    bad[77] = f32::NAN;
    let err = Nf4Tensor::quantize(&bad, &[128]).unwrap_err();
    assert!(
        matches!(err, Nf4Error::NonFinite { index: 77, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("flat index 77"), "{err}");

    let good = Nf4Tensor::quantize(&data, &[2, 64]).unwrap();
    let parts = || {
        (
            good.packed().to_vec(),
            good.absmax_codes().to_vec(),
            good.absmax_scale().to_vec(),
            good.absmax_offset(),
        )
    };
    let (packed, codes, scales, offset) = parts();
    let err = Nf4Tensor::from_parts(vec![2, 64], packed[..63].to_vec(), codes, scales, offset)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Nf4Error::PartLength {
                part: "packed",
                expected: 64,
                actual: 63,
                ..
            }
        ),
        "{err}"
    );

    let (packed, codes, scales, offset) = parts();
    let err = Nf4Tensor::from_parts(vec![2, 64], packed, codes[..1].to_vec(), scales, offset)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Nf4Error::PartLength {
                part: "absmax_codes",
                expected: 2,
                actual: 1,
                ..
            }
        ),
        "{err}"
    );

    let (packed, codes, _, offset) = parts();
    let err =
        Nf4Tensor::from_parts(vec![2, 64], packed, codes, vec![f32::INFINITY], offset).unwrap_err();
    assert!(
        matches!(
            err,
            Nf4Error::NonFiniteScale {
                part: "absmax_scale",
                index: 0,
                ..
            }
        ),
        "{err}"
    );

    let (packed, codes, scales, _) = parts();
    let err = Nf4Tensor::from_parts(vec![2, 64], packed, codes, scales, f32::NAN).unwrap_err();
    assert!(
        matches!(
            err,
            Nf4Error::NonFiniteScale {
                part: "absmax_offset",
                ..
            }
        ),
        "{err}"
    );

    let err = good.dequantize_into(&mut [0.0; 100]).unwrap_err();
    assert!(
        matches!(
            err,
            Nf4Error::OutputLength {
                expected: 128,
                actual: 100
            }
        ),
        "{err}"
    );
}
