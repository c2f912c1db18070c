use candle_core::{Device, Tensor};
use ferrotune::kernels::{dropout, dropout_add, dropout_backward, dropout_keep};

use crate::check::*;

const P: f32 = 0.25;
const SEED: u64 = 42;
const STREAM: u64 = 7;

/// `x * mask / (1 − p)` in plain candle ops, with the mask taken from `dropout_keep`.
fn reference(x: &Tensor) -> candle_core::Result<Tensor> {
    let keep: Vec<f32> = (0..x.elem_count() as u64)
        .map(|i| {
            if dropout_keep(SEED, STREAM, i, P) {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let keep = Tensor::from_vec(keep, x.shape(), &Device::Cpu)?;
    (x * keep)? / f64::from(1.0 - P)
}

#[test]
fn masks_by_flat_index_and_backward_uses_the_same_mask() {
    let mut rng = rng(40);
    // More elements than one parallel chunk, so the flat index crosses chunk boundaries.
    let x = uniform(&mut rng, &[7, 5000], 1.0);
    let dy = uniform(&mut rng, &[7, 5000], 1.0);

    let y = dropout(&x, P, SEED, &[STREAM]).unwrap();
    assert_close("y", &y, &reference(&x).unwrap(), FORWARD_RTOL);
    let kept = values(&y).iter().filter(|&&v| v != 0.0).count() as f64 / x.elem_count() as f64;
    assert!((kept - 0.75).abs() < 0.01, "kept fraction {kept}");

    let dx = dropout_backward(&dy, P, SEED, &[STREAM]).unwrap();
    let tape = tape_grads(&[&x], &dy, |t| reference(&t[0]));
    assert_close("dx", &dx, &tape[0], BACKWARD_RTOL);

    check_finite_differences("dropout", &[&x], &[&dx], &mut rng, |t| {
        weighted_sum(&dropout(&t[0], P, SEED, &[STREAM]).unwrap(), &dy)
    });
}

#[test]
fn same_arguments_same_mask_and_other_streams_differ() {
    let mut rng = rng(41);
    let x = uniform(&mut rng, &[64, 64], 1.0);
    let a = dropout(&x, P, SEED, &[STREAM]).unwrap();
    assert_bitwise_eq(
        "repeat",
        &a,
        &with_threads(3, || dropout(&x, P, SEED, &[STREAM]).unwrap()),
    );
    let other = values(&dropout(&x, P, SEED, &[STREAM + 1]).unwrap());
    assert!(
        values(&a).iter().zip(&other).any(|(a, b)| a != b),
        "another stream gives another mask"
    );
    assert_bitwise_eq(
        "p = 0 is the identity",
        &dropout(&x, 0.0, SEED, &[STREAM]).unwrap(),
        &x,
    );
}

#[test]
fn each_sequence_has_its_own_stream_and_add_fuses_the_sum() {
    let mut rng = rng(42);
    // Three sequences of 4 rows; each segment is bigger than one parallel chunk.
    let x = uniform(&mut rng, &[12, 5000], 1.0);
    let base = uniform(&mut rng, &[12, 5000], 1.0);
    let streams = [3u64, 99, 12_345];
    let y = dropout(&x, P, SEED, &streams).unwrap();
    for (s, &stream) in streams.iter().enumerate() {
        let part = x.narrow(0, 4 * s, 4).unwrap();
        assert_bitwise_eq(
            &format!("segment {s}"),
            &y.narrow(0, 4 * s, 4).unwrap(),
            &dropout(&part, P, SEED, &[stream]).unwrap(),
        );
    }
    let sum = dropout_add(&base, &x, P, SEED, &streams).unwrap();
    assert_close("base + dropout", &sum, &(&base + &y).unwrap(), FORWARD_RTOL);
    let err = dropout(&x, P, SEED, &[1, 2, 3, 4, 5]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "kernel dropout: 5 streams do not split 12 rows into equal segments"
    );
}

#[test]
fn rejects_probabilities_outside_zero_to_one() {
    let x = Tensor::ones(4, candle_core::DType::F32, &Device::Cpu).unwrap();
    for p in [1.0, -0.1, f32::NAN] {
        let err = dropout(&x, p, SEED, &[STREAM]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("kernel dropout: dropout probability must be in [0, 1), got {p}")
        );
    }
}
