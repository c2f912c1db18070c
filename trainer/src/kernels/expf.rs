//! A branch-free f32 `exp` that LLVM vectorises inside the kernels' loops (the C library's `expf`
//! is a scalar call), accurate to a few ulp.
//!
//! Method (Cody–Waite range reduction with a degree-6 minimax polynomial, as in Cephes `expf`):
//! `x = n·ln2 + r` with `n = round(x / ln2)` and `|r| <= ln2/2`; `exp(r)` by the polynomial;
//! `exp(x) = 2^n · exp(r)` by writing `n` into the exponent bits.

/// Below this `exp` underflows to (sub)normals; the result is flushed to 0 (absolute error < 1e-38).
const UNDERFLOW: f32 = -87.3;
/// Above this `2^n` would leave the normal range; the result is `+inf` (f32 overflows from
/// 88.72 on, so this loses the top 0.7 of the range, which no kernel reaches).
const OVERFLOW: f32 = 88.0;
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split into a part exact in few bits and a correction, so `n · LN2_HI` is exact.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5 · 2^23: adding and subtracting it rounds to the nearest integer (ties to even).
const ROUND: f32 = 12_582_912.0;

/// `e^x` for f32, with `exp(-inf) = 0`, `exp(+inf) = +inf` and NaN propagated.
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
    let xc = x.clamp(UNDERFLOW, OVERFLOW);
    let n = (xc * LOG2E + ROUND) - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    let y = er * scale;
    if x < UNDERFLOW {
        0.0
    } else if x > OVERFLOW {
        f32::INFINITY
    } else if x.is_nan() {
        x
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_a_few_ulp_of_f64_exp() {
        let mut worst = 0.0f64;
        for i in 0..=2_000_000 {
            let x = -87.0 + 175.0 * i as f32 / 2_000_000.0;
            let x = x.min(OVERFLOW);
            let want = f64::from(x).exp();
            let rel = (f64::from(exp(x)) - want).abs() / want;
            worst = worst.max(rel);
        }
        // f32's epsilon is 1.19e-7; a few ulp of relative error.
        assert!(worst < 4e-7, "worst relative error {worst}");
    }

    #[test]
    fn special_values() {
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(0.0), 1.0);
    }
}
