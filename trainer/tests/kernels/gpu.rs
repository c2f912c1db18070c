//! Every kernel's GPU path (f32 and bf16) against its CPU f32 path on the same random inputs.
//!
//! Tolerances, relative to `|want| + rms(want)` per element ([`assert_close`]): f32 on the GPU
//! 1e-4 (the same formulas, other summation orders and fused multiply-adds); bf16 2e-2 for
//! elementwise kernels and 5e-2 where a bf16 product feeds a softmax (attention, loss), against
//! the CPU run on the bf16-rounded inputs. Dropout masks and NF4 dequantisation must be exact.
//! Without a CUDA build or GPU every test prints that it was skipped and passes.

use candle_core::{DType, Device, Tensor};
use ferrotune::kernels::{
    HeadGrad, RopeTable, attention, attention_backward, dropout, dropout_add, embedding,
    embedding_backward, lm_head_loss, matmul_add, matmul_add_into, matmul_t, rms_norm,
    rms_norm_backward, rope, rope_backward, swiglu, swiglu_backward,
};
use rand::Rng;

use crate::check::*;

const F32_RTOL: f32 = 1e-4;
const BF16_RTOL: f32 = 2e-2;
const BF16_SOFTMAX_RTOL: f32 = 5e-2;

/// The GPU, or `None` (with a message) in a build or on a machine without one.
fn gpu() -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("skipped: no CUDA device in this build or on this machine ({e})");
            None
        }
    }
}

/// `t` as a CPU f32 tensor.
fn host(t: &Tensor) -> Tensor {
    t.to_device(&Device::Cpu)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
}

/// `t` rounded to `dtype` and back to CPU f32 (the reference's view of a bf16 input).
fn rounded(t: &Tensor, dtype: DType) -> Tensor {
    t.to_dtype(dtype).unwrap().to_dtype(DType::F32).unwrap()
}

/// `t` on the GPU in `dtype`.
fn up(t: &Tensor, dev: &Device, dtype: DType) -> Tensor {
    t.to_dtype(dtype).unwrap().to_device(dev).unwrap()
}

/// Runs `check(dtype, rtol)` for f32 and bf16.
fn both(rtol_bf16: f32, mut check: impl FnMut(DType, f32)) {
    check(DType::F32, F32_RTOL);
    check(DType::BF16, rtol_bf16);
}

#[test]
fn rms_norm_forward_and_backward() {
    let Some(dev) = gpu() else { return };
    let mut r = rng(1);
    let (x, w, dy) = (
        uniform(&mut r, &[37, 300], 2.0),
        uniform(&mut r, &[300], 1.5),
        uniform(&mut r, &[37, 300], 1.0),
    );
    both(BF16_RTOL, |dtype, rtol| {
        let (xr, wr, dyr) = (rounded(&x, dtype), rounded(&w, dtype), rounded(&dy, dtype));
        let (y_cpu, rstd_cpu) = rms_norm(&xr, &wr, 1e-5).unwrap();
        let (xg, wg, dyg) = (
            up(&x, &dev, dtype),
            up(&w, &dev, dtype),
            up(&dy, &dev, dtype),
        );
        let (y, rstd) = rms_norm(&xg, &wg, 1e-5).unwrap();
        assert_eq!(y.dtype(), dtype);
        assert_close(&format!("rms_norm y {dtype:?}"), &host(&y), &y_cpu, rtol);
        assert_close("rms_norm rstd", &host(&rstd), &rstd_cpu, F32_RTOL);
        let (dx_cpu, dw_cpu) = rms_norm_backward(&xr, &wr, &rstd_cpu, &dyr, true).unwrap();
        let (dx, dw) = rms_norm_backward(&xg, &wg, &rstd, &dyg, true).unwrap();
        assert_close(&format!("rms_norm dx {dtype:?}"), &host(&dx), &dx_cpu, rtol);
        assert_close(
            &format!("rms_norm dw {dtype:?}"),
            &host(&dw.unwrap()),
            &dw_cpu.unwrap(),
            rtol,
        );
    });
}

#[test]
fn swiglu_forward_and_backward() {
    let Some(dev) = gpu() else { return };
    let mut r = rng(2);
    let (g, u, dy) = (
        uniform(&mut r, &[19, 513], 6.0),
        uniform(&mut r, &[19, 513], 2.0),
        uniform(&mut r, &[19, 513], 1.0),
    );
    both(BF16_RTOL, |dtype, rtol| {
        let (gr, ur, dyr) = (rounded(&g, dtype), rounded(&u, dtype), rounded(&dy, dtype));
        let (gg, ug, dyg) = (
            up(&g, &dev, dtype),
            up(&u, &dev, dtype),
            up(&dy, &dev, dtype),
        );
        let y = swiglu(&gg, &ug).unwrap();
        assert_close(
            &format!("swiglu {dtype:?}"),
            &host(&y),
            &swiglu(&gr, &ur).unwrap(),
            rtol,
        );
        let (dg, du) = swiglu_backward(&gg, &ug, &dyg).unwrap();
        let (dg_cpu, du_cpu) = swiglu_backward(&gr, &ur, &dyr).unwrap();
        assert_close(
            &format!("swiglu dgate {dtype:?}"),
            &host(&dg),
            &dg_cpu,
            rtol,
        );
        assert_close(&format!("swiglu dup {dtype:?}"), &host(&du), &du_cpu, rtol);
    });
}

#[test]
fn rope_forward_and_backward() {
    let Some(dev) = gpu() else { return };
    let mut r = rng(3);
    let (n, h, hd) = (23, 5, 64);
    let freqs: Vec<f32> = (0..hd / 2)
        .map(|i| 10000f32.powf(-2.0 * i as f32 / hd as f32))
        .collect();
    let table_cpu = RopeTable::new(&freqs, 4096, &Device::Cpu).unwrap();
    let table_gpu = RopeTable::new(&freqs, 4096, &dev).unwrap();
    let positions: Vec<u32> = (0..n).map(|_| r.random_range(0..4096)).collect();
    let x = uniform(&mut r, &[n, h, hd], 2.0);
    both(BF16_RTOL, |dtype, rtol| {
        let xr = rounded(&x, dtype);
        let xg = up(&x, &dev, dtype);
        let want = rope(&xr, &table_cpu, &positions).unwrap();
        let got = rope(&xg, &table_gpu, &positions).unwrap();
        assert_close(&format!("rope {dtype:?}"), &host(&got), &want, rtol);
        let back = rope_backward(&xg, &table_gpu, &positions).unwrap();
        let back_cpu = rope_backward(&xr, &table_cpu, &positions).unwrap();
        assert_close(
            &format!("rope backward {dtype:?}"),
            &host(&back),
            &back_cpu,
            rtol,
        );
    });
}

#[test]
fn embedding_lookup_and_gradient() {
    let Some(dev) = gpu() else { return };
    let mut r = rng(4);
    let (vocab, d, n) = (300, 96, 500);
    let ids: Vec<u32> = (0..n)
        .map(|_| r.random_range(0..vocab as u32 / 3))
        .collect();
    let table = uniform(&mut r, &[vocab, d], 1.0);
    let dy = uniform(&mut r, &[n, d], 1.0);
    both(BF16_RTOL, |dtype, rtol| {
        let got = embedding(&ids, &up(&table, &dev, dtype)).unwrap();
        assert_bitwise_eq(
            &format!("embedding {dtype:?}"),
            &host(&got),
            &embedding(&ids, &rounded(&table, dtype)).unwrap(),
        );
        let grad = embedding_backward(&ids, &up(&dy, &dev, dtype), vocab).unwrap();
        assert_eq!(grad.dtype(), DType::F32);
        let want = embedding_backward(&ids, &rounded(&dy, dtype), vocab).unwrap();
        assert_close(
            &format!("embedding grad {dtype:?}"),
            &host(&grad),
            &want,
            rtol.min(1e-5),
        );
    });
}

#[test]
fn dropout_masks_match_the_cpu_exactly() {
    let Some(dev) = gpu() else { return };
    let mut r = rng(5);
    // Segments of 78·333 / s elements take the one-element-a-thread kernel; those of 48·320 / s
    // (multiples of 8) the eight-a-thread one.
    for shape in [[78, 333], [48, 320]] {
        let x = uniform(&mut r, &shape, 1.0);
        let base = uniform(&mut r, &shape, 1.0);
        for (seed, streams, p) in [
            (1u64, vec![2u64], 0.1f32),
            (99, vec![12345, 6, 7], 0.5),
            (7, vec![0, 1], 0.05),
        ] {
            let want = dropout(&x, p, seed, &streams).unwrap();
            let got = dropout(&up(&x, &dev, DType::F32), p, seed, &streams).unwrap();
            assert_bitwise_eq("dropout f32", &host(&got), &want);
            let got16 = host(&dropout(&up(&x, &dev, DType::BF16), p, seed, &streams).unwrap());
            let kept = |t: &Tensor| values(t).iter().map(|v| *v != 0.0).collect::<Vec<_>>();
            assert_eq!(
                kept(&got16),
                kept(&want),
                "{shape:?}: bf16 dropout keeps the same elements"
            );
            let want_sum = dropout_add(&base, &x, p, seed, &streams).unwrap();
            let (b, xs) = (up(&base, &dev, DType::F32), up(&x, &dev, DType::F32));
            let got_sum = dropout_add(&b, &xs, p, seed, &streams).unwrap();
            assert_bitwise_eq("dropout_add f32", &host(&got_sum), &want_sum);
        }
    }
}

#[test]
fn matmul_add_accumulates_into_the_output() {
    let Some(dev) = gpu() else { return };
    let mut r = rng(9);
    let (m, k, n) = (37, 70, 53);
    let c = uniform(&mut r, &[m, n], 1.0);
    for (a_t, b_t) in [(false, false), (true, false), (false, true), (true, true)] {
        let a = uniform(&mut r, &if a_t { [k, m] } else { [m, k] }, 1.0);
        let b = uniform(&mut r, &if b_t { [n, k] } else { [k, n] }, 1.0);
        let want = matmul_add(c.clone(), &a, a_t, &b, b_t).unwrap();
        // Inputs in f32 and bf16; the output in the inputs' dtype, or f32 under bf16 inputs.
        for (dtype, c_dtype, rtol) in [
            (DType::F32, DType::F32, F32_RTOL),
            (DType::BF16, DType::BF16, BF16_RTOL),
            (DType::BF16, DType::F32, BF16_RTOL),
        ] {
            let (ar, br) = (rounded(&a, dtype), rounded(&b, dtype));
            let want = matmul_add(rounded(&c, c_dtype), &ar, a_t, &br, b_t).unwrap();
            let got = matmul_add(
                up(&c, &dev, c_dtype),
                &up(&a, &dev, dtype),
                a_t,
                &up(&b, &dev, dtype),
                b_t,
            )
            .unwrap();
            assert_eq!(got.dtype(), c_dtype);
            assert_close(
                &format!("{dtype:?} into {c_dtype:?}, a_t {a_t}, b_t {b_t}"),
                &host(&got),
                &want,
                rtol,
            );
        }
        let plain = (&c + matmul_t(&a, a_t, &b, b_t).unwrap()).unwrap();
        assert_close("cpu", &want, &plain, 1e-6);
    }
}

#[test]
fn matmul_add_into_adds_into_its_slice_of_a_flat_buffer_only() {
    let Some(dev) = gpu() else { return };
    let mut r = rng(12);
    let (m, k, n, offset, tail) = (29, 64, 41, 77, 13);
    let len = offset + m * n + tail;
    let flat = uniform(&mut r, &[len], 1.0);
    for (a_t, b_t) in [(false, false), (true, false), (false, true), (true, true)] {
        let a = uniform(&mut r, &if a_t { [k, m] } else { [m, k] }, 1.0);
        let b = uniform(&mut r, &if b_t { [n, k] } else { [k, n] }, 1.0);
        for (dtype, rtol) in [(DType::F32, F32_RTOL), (DType::BF16, BF16_RTOL)] {
            let (ar, br) = (rounded(&a, dtype), rounded(&b, dtype));
            let slice = flat
                .narrow(0, offset, m * n)
                .unwrap()
                .reshape((m, n))
                .unwrap();
            let sum = matmul_add(slice, &ar, a_t, &br, b_t).unwrap();
            let want = Tensor::cat(
                &[
                    &flat.narrow(0, 0, offset).unwrap(),
                    &sum.flatten_all().unwrap(),
                    &flat.narrow(0, offset + m * n, tail).unwrap(),
                ],
                0,
            )
            .unwrap();
            let got = up(&flat, &dev, DType::F32);
            let (ad, bd) = (up(&a, &dev, dtype), up(&b, &dev, dtype));
            matmul_add_into(&got, offset, &ad, a_t, &bd, b_t).unwrap();
            let got = host(&got);
            let what = format!("{dtype:?}, a_t {a_t}, b_t {b_t}");
            assert_close(&what, &got, &want, rtol);
            // Outside the slice the buffer is untouched, bit for bit.
            for range in [0..offset, offset + m * n..len] {
                let part = |t: &Tensor| {
                    t.narrow(0, range.start, range.len())
                        .unwrap()
                        .to_vec1::<f32>()
                        .unwrap()
                };
                assert_eq!(part(&got), part(&flat), "{what}: outside {range:?}");
            }
        }
    }
    // A product larger than the buffer's remainder is refused.
    let (a, b) = (
        up(&uniform(&mut r, &[m, k], 1.0), &dev, DType::F32),
        up(&uniform(&mut r, &[k, n], 1.0), &dev, DType::F32),
    );
    let small = up(&flat.narrow(0, 0, m * n - 1).unwrap(), &dev, DType::F32);
    assert!(matmul_add_into(&small, 0, &a, false, &b, false).is_err());
}

#[test]
fn attention_forward_and_backward() {
    let Some(dev) = gpu() else { return };
    let mut r = rng(6);
    // Grouped heads, more keys than queries (a cache), a padded key mask with a fully masked row.
    for (b, tq, tk, h, hkv, hd, masked) in [
        (2, 33, 33, 6, 2, 32, false),
        (2, 17, 40, 4, 1, 64, true),
        (1, 64, 64, 4, 2, 64, false),
    ] {
        let q = uniform(&mut r, &[b, tq, h, hd], 1.5);
        let k = uniform(&mut r, &[b, tk, hkv, hd], 1.5);
        let v = uniform(&mut r, &[b, tk, hkv, hd], 1.0);
        let dout = uniform(&mut r, &[b, tq, h, hd], 1.0);
        let mask: Option<Vec<u8>> = masked.then(|| {
            (0..b * tk)
                .map(|i| u8::from(!(i / tk == 1 && i % tk < 30)))
                .collect()
        });
        let scale = 1.0 / (hd as f32).sqrt();
        both(BF16_SOFTMAX_RTOL, |dtype, rtol| {
            let [qr, kr, vr, dr] = [&q, &k, &v, &dout].map(|t| rounded(t, dtype));
            let [qg, kg, vg, dg] = [&q, &k, &v, &dout].map(|t| up(t, &dev, dtype));
            let want = attention(&qr, &kr, &vr, mask.as_deref(), scale).unwrap();
            let got = attention(&qg, &kg, &vg, mask.as_deref(), scale).unwrap();
            let what = format!("attention {b}x{tq}x{tk} {h}/{hkv} {dtype:?}");
            assert_close(&format!("{what} out"), &host(&got.out), &want.out, rtol);
            let finite = |t: &Tensor| values(t).iter().map(|x| x.is_finite()).collect::<Vec<_>>();
            assert_eq!(
                finite(&host(&got.lse)),
                finite(&want.lse),
                "{what}: rows without keys"
            );
            let clean = |t: &Tensor| {
                let v: Vec<f32> = values(t)
                    .iter()
                    .map(|x| if x.is_finite() { *x } else { 0.0 })
                    .collect();
                Tensor::from_vec(v, t.dims(), &Device::Cpu).unwrap()
            };
            assert_close(
                &format!("{what} lse"),
                &clean(&host(&got.lse)),
                &clean(&want.lse),
                rtol,
            );
            let grads = attention_backward(
                &qg,
                &kg,
                &vg,
                &got.out,
                &got.lse,
                &dg,
                mask.as_deref(),
                scale,
            )
            .unwrap();
            let grads_cpu = attention_backward(
                &qr,
                &kr,
                &vr,
                &want.out,
                &want.lse,
                &dr,
                mask.as_deref(),
                scale,
            )
            .unwrap();
            for (name, g, w) in [
                ("dq", &grads.0, &grads_cpu.0),
                ("dk", &grads.1, &grads_cpu.1),
                ("dv", &grads.2, &grads_cpu.2),
            ] {
                assert_close(&format!("{what} {name}"), &host(g), w, rtol);
            }
        });
    }
}

#[test]
fn lm_head_loss_and_gradients() {
    let Some(dev) = gpu() else { return };
    let mut r = rng(7);
    let (n, d, vocab) = (45, 64, 1000);
    let h = uniform(&mut r, &[n, d], 1.0);
    let w = uniform(&mut r, &[vocab, d], 0.5);
    let targets: Vec<i32> = (0..n)
        .map(|i| {
            if i % 5 == 0 {
                -1
            } else {
                r.random_range(0..vocab as i32)
            }
        })
        .collect();
    both(BF16_SOFTMAX_RTOL, |dtype, rtol| {
        let want = lm_head_loss(
            &rounded(&h, dtype),
            &rounded(&w, dtype),
            &targets,
            0.03,
            HeadGrad::Return,
        )
        .unwrap();
        let got = lm_head_loss(
            &up(&h, &dev, dtype),
            &up(&w, &dev, dtype),
            &targets,
            0.03,
            HeadGrad::Return,
        )
        .unwrap();
        assert_eq!(got.n_targets, want.n_targets);
        let rel = (got.loss_sum - want.loss_sum).abs() / want.loss_sum;
        assert!(
            rel < f64::from(rtol) / 10.0,
            "{dtype:?}: loss {} vs {}",
            got.loss_sum,
            want.loss_sum
        );
        assert_close(
            &format!("lm_head dh {dtype:?}"),
            &host(&got.dh),
            &want.dh,
            rtol,
        );
        let want_dw = want.dw.unwrap();
        assert_close(
            &format!("lm_head dw {dtype:?}"),
            &host(&got.dw.unwrap()),
            &want_dw,
            rtol,
        );
        // Added into a slice of a flat buffer instead: the same gradient on top of what was there.
        let (offset, len) = (5, want_dw.elem_count());
        let start = uniform(&mut r, &[offset + len], 1e-3);
        let flat = up(&start, &dev, DType::F32);
        let into = lm_head_loss(
            &up(&h, &dev, dtype),
            &up(&w, &dev, dtype),
            &targets,
            0.03,
            HeadGrad::Into(&flat, offset),
        )
        .unwrap();
        assert!(into.dw.is_none());
        let added = (host(&flat).narrow(0, offset, len).unwrap()
            - start.narrow(0, offset, len).unwrap())
        .unwrap();
        assert_close(
            &format!("lm_head dw into a flat buffer {dtype:?}"),
            &added.reshape(want_dw.shape()).unwrap(),
            &want_dw,
            rtol,
        );
    });
}

#[cfg(feature = "cuda")]
#[test]
fn nf4_dequantises_exactly_as_on_the_cpu() {
    let Some(dev) = gpu() else { return };
    let Device::Cuda(cuda) = &dev else {
        unreachable!()
    };
    let mut r = rng(8);
    // Not a multiple of the 64-value block or of the 256-block scale groups.
    let w = uniform(&mut r, &[301, 129], 0.1);
    let q = ferrotune::quant::nf4::Nf4Tensor::from_tensor(&w).unwrap();
    let gpu_q = ferrotune::kernels::Nf4Device::upload(&q, cuda).unwrap();
    let want = q.to_tensor(&Device::Cpu).unwrap();
    let got = ferrotune::kernels::nf4_dequantize(&gpu_q, DType::F32).unwrap();
    assert_bitwise_eq("nf4 f32", &host(&got), &want);
    let got16 = ferrotune::kernels::nf4_dequantize(&gpu_q, DType::BF16).unwrap();
    assert_bitwise_eq("nf4 bf16", &host(&got16), &rounded(&want, DType::BF16));
}

/// The optimizer's GPU kernels against the host code the CPU trainer runs: AdamW (30 steps,
/// segments with and without decay, a clipping scale, both forms of torch's lerp) and gradient
/// accumulation bit for bit, the squared norm to f64 rounding.
#[test]
fn optimizer_state_updates_exactly_as_on_the_cpu() {
    use ferrotune::kernels::{accumulate, sum_of_squares, zero};
    use ferrotune::train::clip;
    use ferrotune::train::optim::{AdamW, AdamWConfig, Segment};

    let Some(dev) = gpu() else { return };
    let mut r = rng(9);
    // Lengths that are not multiples of a block, and a segment longer than one grid's stride.
    let lens = [1000, 37, 3_000_000, 5, 4096];
    let segments: Vec<Segment> = lens
        .iter()
        .scan(0, |offset, &len| {
            let s = Segment {
                offset: *offset,
                len,
                decay: len != 37,
            };
            *offset += len;
            Some(s)
        })
        .collect();
    let n: usize = lens.iter().sum();
    for beta1 in [0.9, 0.3] {
        let config = AdamWConfig {
            beta1,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        };
        let mut params = values(&uniform(&mut r, &[n], 1.0));
        let mut cpu = AdamW::new(config, n);
        let mut gpu_adam = AdamW::new(config, n).on(&dev).unwrap();
        let p_dev = Tensor::from_slice(&params, n, &Device::Cpu)
            .unwrap()
            .to_device(&dev)
            .unwrap();
        // One run also writes the model's bf16 copy in the same pass.
        let shadow = (beta1 == 0.9).then(|| Tensor::zeros(n, DType::BF16, &dev).unwrap());
        for step in 0..30 {
            let grads = values(&uniform(&mut r, &[n], 0.5));
            let g_dev = Tensor::from_slice(&grads, n, &dev).unwrap();
            let (lr, scale) = (1e-3 * (1.0 + step as f64), 0.37);
            cpu.step_scaled(&mut params, &grads, &segments, lr, scale)
                .unwrap();
            gpu_adam
                .step_on_device(&p_dev, shadow.as_ref(), &g_dev, &segments, lr, scale)
                .unwrap();
        }
        let want = Tensor::from_vec(params, n, &Device::Cpu).unwrap();
        assert_bitwise_eq(&format!("adamw params β1 {beta1}"), &host(&p_dev), &want);
        if let Some(shadow) = &shadow {
            assert_bitwise_eq(
                "adamw bf16 copy",
                &host(shadow),
                &rounded(&want, DType::BF16),
            );
        }
        let (sc, sg) = (cpu.state().unwrap(), gpu_adam.state().unwrap());
        assert_eq!(sc.step, sg.step);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(bits(&sc.exp_avg) == bits(&sg.exp_avg), "exp_avg β1 {beta1}");
        assert!(
            bits(&sc.exp_avg_sq) == bits(&sg.exp_avg_sq),
            "exp_avg_sq β1 {beta1}"
        );
    }

    // Accumulation of f32 and bf16 micro-batch gradients into a slice of the flat buffer.
    let flat = Tensor::zeros(n, DType::F32, &dev).unwrap();
    let mut want = vec![0.0f32; n];
    for (k, dtype) in [DType::F32, DType::BF16, DType::F32]
        .into_iter()
        .enumerate()
    {
        let offset = 1000 * k + 3;
        let g = rounded(&uniform(&mut r, &[37, 1001], 2.0), dtype);
        for (w, x) in want[offset..].iter_mut().zip(values(&g)) {
            *w += x;
        }
        accumulate(&flat, offset, &up(&g, &dev, dtype)).unwrap();
    }
    let want = Tensor::from_vec(want, n, &Device::Cpu).unwrap();
    assert_bitwise_eq("accumulate", &host(&flat), &want);

    // The squared norm: f64 sums in another order, so equal to about 1e-15 relative.
    let got = sum_of_squares(&flat).unwrap();
    let expected = clip::sum_of_squares(&values(&want));
    assert!(
        (got - expected).abs() <= 1e-12 * expected,
        "sum of squares {got} vs {expected}"
    );
    zero(&flat).unwrap();
    assert_eq!(sum_of_squares(&flat).unwrap(), 0.0);
    let err = accumulate(
        &flat,
        n - 10,
        &up(&want.narrow(0, 0, 11).unwrap(), &dev, DType::F32),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("at least"), "{err}");
}
