use candle_core::{Device, Tensor};
use ferrotune::kernels::{KernelError, embedding, embedding_backward};
use rand::Rng;

use crate::check::*;

fn reference(ids: &[u32], table: &Tensor) -> candle_core::Result<Tensor> {
    table.index_select(&Tensor::from_slice(ids, ids.len(), &Device::Cpu)?, 0)
}

#[test]
fn lookup_and_scatter_add_match_reference_tape_and_finite_differences() {
    let mut rng = rng(30);
    let (vocab, d, n) = (50, 12, 40);
    // Repeated ids make the gradient a sum; some ids never occur.
    let ids: Vec<u32> = (0..n)
        .map(|_| rng.random_range(0..vocab as u32 / 2) * 2)
        .collect();
    let table = uniform(&mut rng, &[vocab, d], 1.0);
    let dy = uniform(&mut rng, &[n, d], 1.0);

    let y = embedding(&ids, &table).unwrap();
    assert_bitwise_eq("y", &y, &reference(&ids, &table).unwrap());

    let dt = embedding_backward(&ids, &dy, vocab).unwrap();
    let tape = tape_grads(&[&table], &dy, |t| reference(&ids, &t[0]));
    assert_close("dtable", &dt, &tape[0], BACKWARD_RTOL);
    let dt_rows = values(&dt);
    assert!(
        dt_rows[d..2 * d].iter().all(|&g| g == 0.0),
        "odd ids never occur, so their rows stay zero"
    );

    check_finite_differences("embedding", &[&table], &[&dt], &mut rng, |t| {
        weighted_sum(&embedding(&ids, &t[0]).unwrap(), &dy)
    });
}

#[test]
fn rejects_ids_outside_the_vocabulary() {
    let mut rng = rng(31);
    let table = uniform(&mut rng, &[5, 3], 1.0);
    let err = embedding(&[0, 4, 5], &table).unwrap_err();
    assert!(
        matches!(
            err,
            KernelError::IdOutOfRange {
                index: 2,
                id: 5,
                vocab: 5,
                ..
            }
        ),
        "{err}"
    );
    let err = embedding_backward(&[7, 0], &uniform(&mut rng, &[2, 3], 1.0), 5).unwrap_err();
    assert_eq!(
        err.to_string(),
        "kernel embedding_backward: token id 7 at index 0 is outside the vocabulary 0..5"
    );
}
