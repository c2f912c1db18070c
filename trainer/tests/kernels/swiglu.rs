use candle_core::Tensor;
use ferrotune::kernels::{swiglu, swiglu_backward};

use crate::check::*;

/// `silu(gate) * up` in plain candle ops.
fn reference(gate: &Tensor, up: &Tensor) -> candle_core::Result<Tensor> {
    let silu = (gate / (gate.neg()?.exp()? + 1.0)?)?;
    silu * up
}

#[test]
fn forward_and_backward_match_reference_tape_and_finite_differences() {
    let mut rng = rng(3);
    // More elements than one parallel chunk, with a ragged tail.
    let (n, f) = (9, 2000);
    let gate = uniform(&mut rng, &[n, f], 4.0);
    let up = uniform(&mut rng, &[n, f], 2.0);
    let dy = uniform(&mut rng, &[n, f], 1.0);

    let y = swiglu(&gate, &up).unwrap();
    assert_close("y", &y, &reference(&gate, &up).unwrap(), FORWARD_RTOL);

    let (dgate, dup) = swiglu_backward(&gate, &up, &dy).unwrap();
    let tape = tape_grads(&[&gate, &up], &dy, |t| reference(&t[0], &t[1]));
    assert_close("dgate", &dgate, &tape[0], BACKWARD_RTOL);
    assert_close("dup", &dup, &tape[1], BACKWARD_RTOL);

    check_finite_differences("swiglu", &[&gate, &up], &[&dgate, &dup], &mut rng, |t| {
        weighted_sum(&swiglu(&t[0], &t[1]).unwrap(), &dy)
    });
}

#[test]
fn rejects_mismatched_shapes() {
    let mut rng = rng(4);
    let err = swiglu(
        &uniform(&mut rng, &[3, 4], 1.0),
        &uniform(&mut rng, &[4, 3], 1.0),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "kernel swiglu: `up` must have shape [3, 4], got [4, 3]"
    );
}
