use candle_core::{Device, Tensor};
use ferrotune::kernels::{HeadGrad, KernelError, LmHeadLoss, lm_head_loss};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::check::*;

/// Σ over rows with a target of `−log_softmax(h · wᵀ)[target]`, in plain candle ops (full logits,
/// log-softmax, then gather).
fn reference(h: &Tensor, w: &Tensor, targets: &[i32]) -> candle_core::Result<Tensor> {
    let (rows, picked): (Vec<u32>, Vec<u32>) = targets
        .iter()
        .enumerate()
        .filter(|&(_, &t)| t >= 0)
        .map(|(r, &t)| (r as u32, t as u32))
        .unzip();
    let n = rows.len();
    let logits = h.matmul(&w.t()?)?;
    let shifted = logits.broadcast_sub(&logits.max_keepdim(1)?.detach())?;
    let log_probs = shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(1)?.log()?)?;
    let rows = Tensor::from_vec(rows, n, &Device::Cpu)?;
    let picked = Tensor::from_vec(picked, (n, 1), &Device::Cpu)?;
    log_probs
        .index_select(&rows, 0)?
        .gather(&picked, 1)?
        .sum_all()?
        .neg()
}

/// Targets for `n` rows over `vocab`, about `share` of them set, including both vocabulary ends.
fn random_targets(rng: &mut ChaCha8Rng, n: usize, vocab: usize, share: f64) -> Vec<i32> {
    let mut targets: Vec<i32> = (0..n)
        .map(|_| {
            if rng.random_bool(share) {
                rng.random_range(0..vocab as i32)
            } else {
                -1
            }
        })
        .collect();
    targets[1] = 0;
    targets[n - 1] = vocab as i32 - 1;
    targets
}

fn run(h: &Tensor, w: &Tensor, targets: &[i32], grad_scale: f32) -> LmHeadLoss {
    lm_head_loss(h, w, targets, grad_scale, HeadGrad::Return).unwrap()
}

#[test]
fn matches_log_softmax_reference_over_several_chunks_and_blocks() {
    let mut rng = rng(20);
    // 300 rows at 60% give two row chunks; 4500 words give three vocabulary blocks; width 40 gives
    // two column blocks of dh.
    let (n, d, vocab) = (300, 40, 4500);
    let h = uniform(&mut rng, &[n, d], 1.0);
    let w = uniform(&mut rng, &[vocab, d], 0.5);
    let targets = random_targets(&mut rng, n, vocab, 0.6);
    let n_targets = targets.iter().filter(|&&t| t >= 0).count();
    let grad_scale = 1.0 / n_targets as f32;

    let got = run(&h, &w, &targets, grad_scale);
    assert_eq!(got.n_targets, n_targets);
    let want = f64::from(
        reference(&h, &w, &targets)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
    );
    assert!(
        (got.loss_sum - want).abs() <= 1e-5 * want.abs(),
        "loss_sum {} vs {want}",
        got.loss_sum
    );

    let scale = Tensor::new(grad_scale, &Device::Cpu).unwrap();
    let tape = tape_grads(&[&h, &w], &scale, |t| reference(&t[0], &t[1], &targets));
    assert_close("dh", &got.dh, &tape[0], BACKWARD_RTOL);
    assert_close("dw", got.dw.as_ref().unwrap(), &tape[1], BACKWARD_RTOL);
    let dh = values(&got.dh);
    for (row, _) in targets.iter().enumerate().filter(|&(_, &t)| t == -1) {
        assert!(
            dh[row * d..(row + 1) * d].iter().all(|&g| g == 0.0),
            "row {row} without target has zero dh"
        );
    }

    let frozen = lm_head_loss(&h, &w, &targets, grad_scale, HeadGrad::Skip).unwrap();
    assert!(frozen.dw.is_none());
    assert_eq!(frozen.loss_sum.to_bits(), got.loss_sum.to_bits());
    assert_bitwise_eq("dh without dw", &frozen.dh, &got.dh);
}

#[test]
fn gradients_match_finite_differences() {
    let mut rng = rng(21);
    let (h, w) = (
        uniform(&mut rng, &[6, 8], 1.0),
        uniform(&mut rng, &[37, 8], 1.0),
    );
    let targets = [3, -1, 0, 36, 20, -1];
    let grad_scale = 0.5;
    let got = run(&h, &w, &targets, grad_scale);
    check_finite_differences(
        "lm_head_loss",
        &[&h, &w],
        &[&got.dh, got.dw.as_ref().unwrap()],
        &mut rng,
        |t| f64::from(grad_scale) * run(&t[0], &t[1], &targets, grad_scale).loss_sum,
    );
}

#[test]
fn bit_identical_across_thread_counts() {
    let mut rng = rng(22);
    let (n, d, vocab) = (300, 40, 4500);
    let h = uniform(&mut rng, &[n, d], 1.0);
    let w = uniform(&mut rng, &[vocab, d], 0.5);
    let targets = random_targets(&mut rng, n, vocab, 0.6);
    let one = with_threads(1, || run(&h, &w, &targets, 0.01));
    let three = with_threads(3, || run(&h, &w, &targets, 0.01));
    assert_eq!(one.loss_sum.to_bits(), three.loss_sum.to_bits(), "loss_sum");
    assert_bitwise_eq("dh", &one.dh, &three.dh);
    assert_bitwise_eq("dw", one.dw.as_ref().unwrap(), three.dw.as_ref().unwrap());
}

#[test]
fn rows_without_targets_cost_nothing() {
    let mut rng = rng(23);
    let (h, w) = (
        uniform(&mut rng, &[4, 8], 1.0),
        uniform(&mut rng, &[11, 8], 1.0),
    );
    let got = run(&h, &w, &[-1; 4], 1.0);
    assert_eq!((got.loss_sum, got.n_targets), (0.0, 0));
    assert!(
        values(&got.dh)
            .iter()
            .chain(&values(got.dw.as_ref().unwrap()))
            .all(|&g| g == 0.0)
    );
}

#[test]
fn rejects_targets_outside_the_vocabulary() {
    let mut rng = rng(24);
    let (h, w) = (
        uniform(&mut rng, &[3, 8], 1.0),
        uniform(&mut rng, &[11, 8], 1.0),
    );
    let err = lm_head_loss(&h, &w, &[2, 11, 0], 1.0, HeadGrad::Return).unwrap_err();
    assert!(
        matches!(
            err,
            KernelError::TargetOutOfRange {
                row: 1,
                target: 11,
                vocab: 11
            }
        ),
        "{err}"
    );
    let err = lm_head_loss(&h, &w, &[2, -1, -100], 1.0, HeadGrad::Return).unwrap_err();
    assert_eq!(
        err.to_string(),
        "kernel lm_head_loss: target -100 of row 2 is outside 0..11 (use -1 for no target)"
    );
    let err = lm_head_loss(&h, &w, &[2, -1], 1.0, HeadGrad::Return).unwrap_err();
    assert_eq!(
        err.to_string(),
        "kernel lm_head_loss: `targets` must have 3 entries, got 2"
    );
    // A host-memory pass has no GPU buffer to add the weight gradient into.
    let flat = Tensor::zeros(11 * 8, candle_core::DType::F32, &Device::Cpu).unwrap();
    let err = lm_head_loss(&h, &w, &[2, -1, 0], 1.0, HeadGrad::Into(&flat, 0)).unwrap_err();
    assert!(err.to_string().contains("GPU buffer only"), "{err}");
}
