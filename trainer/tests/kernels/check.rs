//! Seeded inputs, tolerances, tape gradients and finite differences shared by the kernel tests.

use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Relative tolerance of a forward against its plain-op reference.
pub const FORWARD_RTOL: f32 = 1e-5;
/// Relative tolerance of a backward against candle's tape on the reference.
pub const BACKWARD_RTOL: f32 = 1e-4;

/// Central-difference step; inputs are O(1), and the loss is accumulated in f64 from the
/// kernel's f32 outputs, so rounding contributes about 1e-5 / step to each estimate.
const FD_STEP: f32 = 1e-2;
/// A finite-difference estimate `fd` passes when `|fd − g| <= FD_ATOL + FD_RTOL · |g|`.
const FD_ATOL: f64 = 2e-3;
const FD_RTOL: f64 = 1e-2;
/// Coordinates probed per input.
const FD_SAMPLES: usize = 16;

/// A seeded generator, one per test.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A CPU f32 tensor of uniform values in `[-amp, amp)`.
pub fn uniform(rng: &mut ChaCha8Rng, shape: &[usize], amp: f32) -> Tensor {
    let n = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|_| rng.random_range(-amp..amp)).collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

/// The elements of `t` in row-major order.
pub fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// Asserts `|got − want| <= rtol · (|want| + rms(want))` for every element (the rms term keeps
/// elements near zero from demanding an absolute precision the f32 sums cannot give).
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, rtol: f32) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let (g, w) = (values(got), values(want));
    let rms =
        (w.iter().map(|x| f64::from(x * x)).sum::<f64>() / w.len().max(1) as f64).sqrt() as f32;
    for (i, (g, w)) in g.iter().zip(&w).enumerate() {
        let tol = rtol * (w.abs() + rms);
        assert!(
            (g - w).abs() <= tol,
            "{what}[{i}]: got {g}, want {w} (tolerance {tol})"
        );
    }
}

/// Asserts that two tensors are bit-identical.
pub fn assert_bitwise_eq(what: &str, a: &Tensor, b: &Tensor) {
    assert_eq!(a.dims(), b.dims(), "{what}: shape");
    let bits = |t: &Tensor| values(t).iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert!(bits(a) == bits(b), "{what} differs between thread counts");
}

/// Gradients of `Σ f(inputs) ⊙ dy` with respect to each input, by candle's tape autograd.
pub fn tape_grads(
    inputs: &[&Tensor],
    dy: &Tensor,
    f: impl Fn(&[Tensor]) -> candle_core::Result<Tensor>,
) -> Vec<Tensor> {
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&tensors).unwrap();
    let grads = (y * dy).unwrap().sum_all().unwrap().backward().unwrap();
    vars.iter()
        .map(|v| {
            grads
                .get(v.as_tensor())
                .expect("every input reaches the loss")
                .clone()
        })
        .collect()
}

/// `Σ y ⊙ r`, accumulated in f64.
pub fn weighted_sum(y: &Tensor, r: &Tensor) -> f64 {
    values(y)
        .iter()
        .zip(values(r))
        .map(|(y, r)| f64::from(*y) * f64::from(r))
        .sum()
}

/// Checks `grads` (one per input) against central differences of the scalar `loss` at
/// [`FD_SAMPLES`] random coordinates of each input.
pub fn check_finite_differences(
    what: &str,
    inputs: &[&Tensor],
    grads: &[&Tensor],
    rng: &mut ChaCha8Rng,
    loss: impl Fn(&[Tensor]) -> f64,
) {
    for (k, (input, grad)) in inputs.iter().zip(grads).enumerate() {
        assert_eq!(input.dims(), grad.dims(), "{what}: gradient {k} shape");
        let (x, g) = (values(input), values(grad));
        for _ in 0..FD_SAMPLES {
            let i = rng.random_range(0..x.len());
            let at = |delta: f32| {
                let mut moved = x.clone();
                moved[i] += delta;
                let mut args: Vec<Tensor> = inputs.iter().map(|t| (*t).clone()).collect();
                args[k] = Tensor::from_vec(moved, input.dims(), &Device::Cpu).unwrap();
                loss(&args)
            };
            let fd = (at(FD_STEP) - at(-FD_STEP)) / (2.0 * f64::from(FD_STEP));
            let analytic = f64::from(g[i]);
            assert!(
                (fd - analytic).abs() <= FD_ATOL + FD_RTOL * analytic.abs(),
                "{what}: input {k} element {i}: finite difference {fd}, analytic {analytic}"
            );
        }
    }
}

/// Runs `f` on a rayon pool of `threads` threads.
pub fn with_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}
