use candle_core::{D, Tensor};
use ferrotune::kernels::{KernelError, rms_norm, rms_norm_backward};

use crate::check::*;

const EPS: f32 = 1e-5;

/// `LlamaRMSNorm` in plain candle ops.
fn reference(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let rstd = (x.sqr()?.mean_keepdim(D::Minus1)? + f64::from(EPS))?
        .sqrt()?
        .recip()?;
    x.broadcast_mul(&rstd)?.broadcast_mul(w)
}

#[test]
fn forward_and_backward_match_reference_tape_and_finite_differences() {
    let mut rng = rng(1);
    // 70 rows: more than one block of the weight-gradient reduction.
    let (n, d) = (70, 37);
    // In the first rows mean(x²) is about 0.03, so eps moves rstd by 2e-4, well beyond the
    // tolerance, while the finite-difference step stays small against the values.
    let row_scale: Vec<f32> = (0..n).map(|i| if i < 4 { 0.15 } else { 1.0 }).collect();
    let row_scale = Tensor::from_vec(row_scale, (n, 1), &candle_core::Device::Cpu).unwrap();
    let x = uniform(&mut rng, &[n, d], 2.0)
        .broadcast_mul(&row_scale)
        .unwrap();
    let w = uniform(&mut rng, &[d], 1.5);
    let dy = uniform(&mut rng, &[n, d], 1.0);

    let (y, rstd) = rms_norm(&x, &w, EPS).unwrap();
    assert_close("y", &y, &reference(&x, &w).unwrap(), FORWARD_RTOL);
    let want_rstd = (x.sqr().unwrap().mean(1).unwrap() + f64::from(EPS))
        .unwrap()
        .sqrt()
        .unwrap()
        .recip()
        .unwrap();
    assert_close("rstd", &rstd, &want_rstd, FORWARD_RTOL);

    let (dx, dw) = rms_norm_backward(&x, &w, &rstd, &dy, true).unwrap();
    let dw = dw.expect("dw was asked for");
    let tape = tape_grads(&[&x, &w], &dy, |t| reference(&t[0], &t[1]));
    assert_close("dx", &dx, &tape[0], BACKWARD_RTOL);
    assert_close("dw", &dw, &tape[1], BACKWARD_RTOL);

    let (dx_only, none) = rms_norm_backward(&x, &w, &rstd, &dy, false).unwrap();
    assert!(none.is_none());
    assert_bitwise_eq("dx without dw", &dx_only, &dx);

    check_finite_differences("rms_norm", &[&x, &w], &[&dx, &dw], &mut rng, |t| {
        weighted_sum(&rms_norm(&t[0], &t[1], EPS).unwrap().0, &dy)
    });
}

#[test]
fn rejects_mismatched_weight_and_non_f32_input() {
    let mut rng = rng(2);
    let x = uniform(&mut rng, &[4, 8], 1.0);
    let err = rms_norm(&x, &uniform(&mut rng, &[7], 1.0), EPS).unwrap_err();
    assert!(matches!(err, KernelError::Shape { .. }), "{err}");
    assert!(err.to_string().contains("`w` must have shape [8]"), "{err}");

    let half = x.to_dtype(candle_core::DType::BF16).unwrap();
    let err = rms_norm(&half, &uniform(&mut rng, &[8], 1.0), EPS).unwrap_err();
    assert_eq!(
        err.to_string(),
        "kernel rms_norm: input `x` must be f32 on the CPU, got BF16"
    );
}
