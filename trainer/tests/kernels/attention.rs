use candle_core::{D, Device, Tensor};
use ferrotune::kernels::{KernelError, attention, attention_backward};

use crate::check::*;

/// One attention configuration: shapes and an optional `(B, Tk)` key mask.
struct Case {
    name: &'static str,
    b: usize,
    tq: usize,
    tk: usize,
    h: usize,
    hkv: usize,
    hd: usize,
    mask: Option<Vec<u8>>,
}

impl Case {
    fn allowed(&self, b: usize, i: usize, j: usize) -> bool {
        j <= i + (self.tk - self.tq) && self.mask.as_ref().is_none_or(|m| m[b * self.tk + j] != 0)
    }

    fn scale(&self) -> f32 {
        1.0 / (self.hd as f32).sqrt()
    }
}

/// Eager attention in plain candle ops, as transformers' `eager_attention_forward` with
/// `repeat_kv`: masked scores get −1e9, and rows without any allowed key are zeroed afterwards.
/// Returns the output `(B, Tq, H, hd)` and the log-sum-exp `(B, H, Tq)`.
fn reference(
    c: &Case,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
) -> candle_core::Result<(Tensor, Tensor)> {
    let cpu = &Device::Cpu;
    let kv_of_head: Vec<u32> = (0..c.h).map(|h| (h / (c.h / c.hkv)) as u32).collect();
    let kv_of_head = Tensor::from_vec(kv_of_head, c.h, cpu)?;
    let q = q.transpose(1, 2)?.contiguous()?;
    let k = k
        .transpose(1, 2)?
        .contiguous()?
        .index_select(&kv_of_head, 1)?;
    let v = v
        .transpose(1, 2)?
        .contiguous()?
        .index_select(&kv_of_head, 1)?;
    let mut bias = Vec::new();
    let mut any = Vec::new();
    for b in 0..c.b {
        for i in 0..c.tq {
            let row: Vec<bool> = (0..c.tk).map(|j| c.allowed(b, i, j)).collect();
            bias.extend(row.iter().map(|&a| if a { 0.0f32 } else { -1e9 }));
            any.push(if row.contains(&true) { 1.0f32 } else { 0.0 });
        }
    }
    let bias = Tensor::from_vec(bias, (c.b, 1, c.tq, c.tk), cpu)?;
    let any = Tensor::from_vec(any, (c.b, 1, c.tq, 1), cpu)?;
    let scores = (q.matmul(&k.t()?)? * f64::from(c.scale()))?.broadcast_add(&bias)?;
    let max = scores.max_keepdim(D::Minus1)?.detach();
    let e = scores.broadcast_sub(&max)?.exp()?;
    let total = e.sum_keepdim(D::Minus1)?;
    let p = e.broadcast_div(&total)?.broadcast_mul(&any)?;
    let out = p.matmul(&v)?.transpose(1, 2)?.contiguous()?;
    let lse = (max + total.log()?)?.squeeze(D::Minus1)?;
    Ok((out, lse))
}

fn check_case(c: &Case, seed: u64) {
    let mut rng = rng(seed);
    let q = uniform(&mut rng, &[c.b, c.tq, c.h, c.hd], 2.0);
    let k = uniform(&mut rng, &[c.b, c.tk, c.hkv, c.hd], 2.0);
    let v = uniform(&mut rng, &[c.b, c.tk, c.hkv, c.hd], 1.0);
    let dout = uniform(&mut rng, &[c.b, c.tq, c.h, c.hd], 1.0);
    let mask = c.mask.as_deref();
    let name = c.name;

    let fwd = attention(&q, &k, &v, mask, c.scale()).unwrap();
    let (want_out, want_lse) = reference(c, &q, &k, &v).unwrap();
    assert_close(&format!("{name}: out"), &fwd.out, &want_out, FORWARD_RTOL);
    let (lse, want_lse) = (values(&fwd.lse), values(&want_lse));
    for b in 0..c.b {
        for h in 0..c.h {
            for i in 0..c.tq {
                let at = (b * c.h + h) * c.tq + i;
                if (0..c.tk).any(|j| c.allowed(b, i, j)) {
                    let tol = FORWARD_RTOL * want_lse[at].abs().max(1.0);
                    assert!(
                        (lse[at] - want_lse[at]).abs() <= tol,
                        "{name}: lse[{at}] {} vs {}",
                        lse[at],
                        want_lse[at]
                    );
                } else {
                    assert_eq!(
                        lse[at],
                        f32::NEG_INFINITY,
                        "{name}: lse of fully masked row {at}"
                    );
                }
            }
        }
    }

    let (dq, dk, dv) =
        attention_backward(&q, &k, &v, &fwd.out, &fwd.lse, &dout, mask, c.scale()).unwrap();
    let tape = tape_grads(&[&q, &k, &v], &dout, |t| {
        Ok(reference(c, &t[0], &t[1], &t[2])?.0)
    });
    assert_close(&format!("{name}: dq"), &dq, &tape[0], BACKWARD_RTOL);
    assert_close(&format!("{name}: dk"), &dk, &tape[1], BACKWARD_RTOL);
    assert_close(&format!("{name}: dv"), &dv, &tape[2], BACKWARD_RTOL);

    check_finite_differences(name, &[&q, &k, &v], &[&dq, &dk, &dv], &mut rng, |t| {
        weighted_sum(
            &attention(&t[0], &t[1], &t[2], mask, c.scale()).unwrap().out,
            &dout,
        )
    });
}

#[test]
fn multi_head_without_mask() {
    check_case(
        &Case {
            name: "mha",
            b: 2,
            tq: 7,
            tk: 7,
            h: 4,
            hkv: 4,
            hd: 8,
            mask: None,
        },
        10,
    );
}

#[test]
fn groups_of_three_over_two_query_blocks() {
    // 70 queries span two 64-row blocks; head dim 12 is not a power of two.
    check_case(
        &Case {
            name: "gqa3",
            b: 1,
            tq: 70,
            tk: 70,
            h: 3,
            hkv: 1,
            hd: 12,
            mask: None,
        },
        11,
    );
}

#[test]
fn groups_of_four_with_kv_cache_offset_and_left_padding() {
    let mut mask = vec![1u8; 2 * 9];
    mask[9..13].fill(0);
    check_case(
        &Case {
            name: "gqa4 offset",
            b: 2,
            tq: 3,
            tk: 9,
            h: 8,
            hkv: 2,
            hd: 16,
            mask: Some(mask),
        },
        12,
    );
}

#[test]
fn single_query_generation_step_with_left_padding() {
    check_case(
        &Case {
            name: "decode",
            b: 2,
            tq: 1,
            tk: 5,
            h: 2,
            hkv: 1,
            hd: 4,
            mask: Some(vec![1, 1, 1, 1, 1, 0, 0, 1, 1, 1]),
        },
        13,
    );
}

#[test]
fn fully_masked_rows_give_zero_output_and_gradients() {
    // Batch 1 is left-padded by two: its first two queries may attend no key.
    let mask = vec![1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1];
    let c = Case {
        name: "fully masked",
        b: 2,
        tq: 6,
        tk: 6,
        h: 6,
        hkv: 2,
        hd: 12,
        mask: Some(mask),
    };
    check_case(&c, 14);

    let mut rng = rng(15);
    let q = uniform(&mut rng, &[2, 6, 6, 12], 2.0);
    let k = uniform(&mut rng, &[2, 6, 2, 12], 2.0);
    let v = uniform(&mut rng, &[2, 6, 2, 12], 1.0);
    let dout = uniform(&mut rng, &[2, 6, 6, 12], 1.0);
    let fwd = attention(&q, &k, &v, c.mask.as_deref(), c.scale()).unwrap();
    let (dq, _, _) = attention_backward(
        &q,
        &k,
        &v,
        &fwd.out,
        &fwd.lse,
        &dout,
        c.mask.as_deref(),
        c.scale(),
    )
    .unwrap();
    for t in [&fwd.out, &dq] {
        let row_block = values(&t.get(1).unwrap().narrow(0, 0, 2).unwrap());
        assert!(
            row_block.iter().all(|&x| x == 0.0),
            "fully masked rows are exactly zero"
        );
    }
}

#[test]
fn bit_identical_across_thread_counts() {
    let mut rng = rng(16);
    let (b, t, h, hkv, hd) = (2, 70, 6, 2, 12);
    let q = uniform(&mut rng, &[b, t, h, hd], 2.0);
    let k = uniform(&mut rng, &[b, t, hkv, hd], 2.0);
    let v = uniform(&mut rng, &[b, t, hkv, hd], 1.0);
    let dout = uniform(&mut rng, &[b, t, h, hd], 1.0);
    let mut mask = vec![1u8; b * t];
    mask[t..t + 5].fill(0);
    let scale = 1.0 / (hd as f32).sqrt();
    let run = || {
        let fwd = attention(&q, &k, &v, Some(&mask), scale).unwrap();
        let grads =
            attention_backward(&q, &k, &v, &fwd.out, &fwd.lse, &dout, Some(&mask), scale).unwrap();
        (fwd, grads)
    };
    let (one, (dq1, dk1, dv1)) = with_threads(1, run);
    let (three, (dq3, dk3, dv3)) = with_threads(3, run);
    assert_bitwise_eq("out", &one.out, &three.out);
    assert_bitwise_eq("lse", &one.lse, &three.lse);
    assert_bitwise_eq("dq", &dq1, &dq3);
    assert_bitwise_eq("dk", &dk1, &dk3);
    assert_bitwise_eq("dv", &dv1, &dv3);
}

#[test]
fn rejects_inconsistent_shapes() {
    let mut rng = rng(17);
    let q = uniform(&mut rng, &[1, 4, 6, 8], 1.0);
    let kv = uniform(&mut rng, &[1, 4, 4, 8], 1.0);
    let err = attention(&q, &kv, &kv, None, 1.0).unwrap_err();
    assert!(matches!(err, KernelError::Shape { .. }));
    assert_eq!(
        err.to_string(),
        "kernel attention: 6 query heads cannot be grouped over 4 key/value heads of dim 8"
    );
    let kv = uniform(&mut rng, &[1, 3, 2, 8], 1.0);
    let err = attention(&q, &kv, &kv, None, 1.0).unwrap_err();
    assert!(
        err.to_string().contains("4 queries but only 3 keys"),
        "{err}"
    );
    let kv = uniform(&mut rng, &[1, 4, 2, 8], 1.0);
    let err = attention(&q, &kv, &kv, Some(&[1, 1, 1]), 1.0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "kernel attention: `key_mask` must have 4 entries, got 3"
    );
}
