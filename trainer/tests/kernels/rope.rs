use candle_core::{Device, Tensor};
use ferrotune::kernels::{KernelError, RopeTable, rope, rope_backward};
use rand::Rng;

use crate::check::*;

/// Llama's rotary frequencies for head dim `hd` and base `theta`.
fn inv_freq(hd: usize, theta: f32) -> Vec<f32> {
    (0..hd / 2)
        .map(|i| 1.0 / theta.powf((2 * i) as f32 / hd as f32))
        .collect()
}

/// transformers' `apply_rotary_pos_emb` with `rotate_half`, in plain candle ops, with cos/sin
/// computed from `position · inv_freq` as `LlamaRotaryEmbedding` does.
fn reference(x: &Tensor, inv_freq: &[f32], positions: &[u32]) -> candle_core::Result<Tensor> {
    let (n, half) = (positions.len(), inv_freq.len());
    let pos: Vec<f32> = positions.iter().map(|&p| p as f32).collect();
    let pos = Tensor::from_vec(pos, (n, 1), &Device::Cpu)?;
    let freq = Tensor::from_slice(inv_freq, (1, half), &Device::Cpu)?;
    let angles = pos.broadcast_mul(&freq)?;
    let emb = Tensor::cat(&[&angles, &angles], 1)?.unsqueeze(1)?;
    let (x1, x2) = (x.narrow(2, 0, half)?, x.narrow(2, half, half)?);
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], 2)?;
    x.broadcast_mul(&emb.cos()?)? + rotated.broadcast_mul(&emb.sin()?)?
}

#[test]
fn forward_and_backward_match_reference_tape_and_finite_differences() {
    let mut rng = rng(5);
    let (n, h, hd, max_positions) = (10, 3, 12, 4096);
    let freqs = inv_freq(hd, 10_000.0);
    let table = RopeTable::new(&freqs, max_positions, &Device::Cpu).unwrap();
    let mut positions: Vec<u32> = (0..n)
        .map(|_| rng.random_range(0..max_positions as u32))
        .collect();
    positions[0] = 0;
    positions[1] = max_positions as u32 - 1;
    let x = uniform(&mut rng, &[n, h, hd], 2.0);
    let dy = uniform(&mut rng, &[n, h, hd], 1.0);

    let y = rope(&x, &table, &positions).unwrap();
    assert_close(
        "y",
        &y,
        &reference(&x, &freqs, &positions).unwrap(),
        FORWARD_RTOL,
    );

    let dx = rope_backward(&dy, &table, &positions).unwrap();
    let tape = tape_grads(&[&x], &dy, |t| reference(&t[0], &freqs, &positions));
    assert_close("dx", &dx, &tape[0], BACKWARD_RTOL);

    check_finite_differences("rope", &[&x], &[&dx], &mut rng, |t| {
        weighted_sum(&rope(&t[0], &table, &positions).unwrap(), &dy)
    });
}

#[test]
fn table_holds_cos_and_sin_of_position_times_frequency() {
    let freqs = inv_freq(8, 100_000.0);
    let table = RopeTable::new(&freqs, 50, &Device::Cpu).unwrap();
    assert_eq!((table.head_dim(), table.max_positions()), (8, 50));
    let (cos, sin) = (values(table.cos()), values(table.sin()));
    for (p, i) in [(0usize, 0usize), (17, 1), (49, 3)] {
        let angle = p as f32 * freqs[i];
        assert_eq!(
            (cos[p * 4 + i], sin[p * 4 + i]),
            (angle.cos(), angle.sin()),
            "position {p}, pair {i}"
        );
    }
}

#[test]
fn rejects_positions_beyond_the_table_and_wrong_head_dim() {
    let mut rng = rng(6);
    let table = RopeTable::new(&inv_freq(8, 10_000.0), 16, &Device::Cpu).unwrap();
    let x = uniform(&mut rng, &[3, 2, 8], 1.0);
    let err = rope(&x, &table, &[0, 16, 3]).unwrap_err();
    assert!(
        matches!(
            err,
            KernelError::PositionOutOfRange {
                row: 1,
                position: 16,
                max_positions: 16
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "kernel rope: row 1 has position 16, the table holds positions 0..16"
    );

    let err = rope_backward(&uniform(&mut rng, &[3, 2, 6], 1.0), &table, &[0, 1, 2]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "kernel rope_backward: `dy` has head dim 6, the RoPE table was built for 8"
    );
    let err = rope(&x, &table, &[0, 1]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "kernel rope: `positions` must have 3 entries, got 2"
    );
}
