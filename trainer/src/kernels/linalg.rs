//! Single-threaded f32 building blocks for the kernels: strided matrix products through `gemm`
//! and fixed-order dot products that LLVM vectorises.

use gemm::Parallelism;

/// Independent partial sums in [`dot`] and [`sum_sq`]: wide enough for AVX-512, and fixed so the
/// summation order depends only on the length.
const LANES: usize = 16;

/// A read-only strided view of a `rows × cols` matrix: element (i, j) is
/// `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
pub(super) struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A strided view; every addressed element must lie inside `data`.
    pub(super) fn new(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        assert!(
            rows == 0
                || cols == 0
                || (rows - 1) * row_stride + (cols - 1) * col_stride < data.len(),
            "matrix view {rows}x{cols} (strides {row_stride}, {col_stride}) exceeds {} elements",
            data.len()
        );
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// A dense row-major `rows × cols` view.
    pub(super) fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols, 1)
    }

    /// Rows `start..start + count` of this view.
    pub(super) fn row_range(self, start: usize, count: usize) -> Self {
        assert!(
            start + count <= self.rows,
            "rows {start}..{} of a {}-row view",
            start + count,
            self.rows
        );
        let data = if count == 0 {
            &self.data[..0]
        } else {
            &self.data[start * self.row_stride..]
        };
        Self {
            data,
            rows: count,
            ..self
        }
    }

    /// The transposed view (no copy).
    pub(super) fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// A writable row-major `rows × cols` matrix whose rows are `row_stride` apart.
pub(super) struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

impl<'a> MatMut<'a> {
    /// A row-major view with rows `row_stride >= cols` apart, inside `data`.
    pub(super) fn new(data: &'a mut [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        assert!(
            row_stride >= cols,
            "row stride {row_stride} is shorter than a row of {cols}"
        );
        assert!(
            rows == 0 || cols == 0 || (rows - 1) * row_stride + cols <= data.len(),
            "matrix {rows}x{cols} (row stride {row_stride}) exceeds {} elements",
            data.len()
        );
        Self {
            data,
            rows,
            cols,
            row_stride,
        }
    }

    /// A dense row-major `rows × cols` matrix.
    pub(super) fn rows(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols)
    }
}

/// `dst = scale · a · b`, or `dst += scale · a · b` when `accumulate`; single-threaded.
pub(super) fn matmul(dst: MatMut<'_>, a: MatRef<'_>, b: MatRef<'_>, scale: f32, accumulate: bool) {
    assert!(
        a.rows == dst.rows && b.cols == dst.cols && a.cols == b.rows,
        "matmul of {}x{} by {}x{} into {}x{}",
        a.rows,
        a.cols,
        b.rows,
        b.cols,
        dst.rows,
        dst.cols
    );
    if dst.rows == 0 || dst.cols == 0 {
        return;
    }
    if a.cols == 0 {
        if !accumulate {
            for row in dst.data.chunks_mut(dst.row_stride).take(dst.rows) {
                row[..dst.cols].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: the constructors checked that every element addressed through the shapes and
    // strides lies inside its slice; `dst` is borrowed mutably and its rows do not overlap
    // (row_stride >= cols, unit column stride), so it aliases neither `a` nor `b`.
    unsafe {
        gemm::gemm(
            dst.rows,
            dst.cols,
            a.cols,
            dst.data.as_mut_ptr(),
            1,
            dst.row_stride as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            scale,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

/// Σ a[i]·b[i] in a fixed order (interleaved partial sums, then a fixed tree). Uses fused
/// multiply-adds where the CPU has them (AVX2 + FMA), so results are reproducible on one machine,
/// not across CPU generations — as with the GEMMs.
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot of slices of different lengths");
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU features `dot_fma` is compiled for were just detected.
        return unsafe { dot_fma(a, b) };
    }
    dot_lanes(a, b, |s, x, y| s + x * y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_fma(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes(a, b, |s, x, y| x.mul_add(y, s))
}

#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32], step: impl Fn(f32, f32, f32) -> f32) -> f32 {
    let (a_chunks, a_tail) = a.as_chunks::<LANES>();
    let (b_chunks, b_tail) = b.as_chunks::<LANES>();
    let mut acc = [0.0f32; LANES];
    for (x, y) in a_chunks.iter().zip(b_chunks) {
        for ((s, x), y) in acc.iter_mut().zip(x).zip(y) {
            *s = step(*s, *x, *y);
        }
    }
    for ((s, x), y) in acc.iter_mut().zip(a_tail).zip(b_tail) {
        *s = step(*s, *x, *y);
    }
    fold(acc)
}

/// Σ a[i] in a fixed order, like [`dot`].
pub(super) fn sum(a: &[f32]) -> f32 {
    let (chunks, tail) = a.as_chunks::<LANES>();
    let mut acc = [0.0f32; LANES];
    for x in chunks {
        for (s, x) in acc.iter_mut().zip(x) {
            *s += x;
        }
    }
    for (s, x) in acc.iter_mut().zip(tail) {
        *s += x;
    }
    fold(acc)
}

/// Σ a[i]² in the same fixed order as [`dot`].
pub(super) fn sum_sq(a: &[f32]) -> f32 {
    dot(a, a)
}

/// Pairwise sum of the lane accumulators.
fn fold(mut acc: [f32; LANES]) -> f32 {
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        let (low, high) = acc.split_at_mut(width);
        for (s, x) in low.iter_mut().zip(&high[..width]) {
            *s += x;
        }
    }
    acc[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_matmul_matches_naive_product() {
        // a is 3x4 read transposed from a 4x3 buffer; b is 4x2 taken from every other column of a 4x4 buffer.
        let a_buf: Vec<f32> = (0..12).map(|i| (i as f32 * 0.37).sin()).collect();
        let b_buf: Vec<f32> = (0..16).map(|i| (i as f32 * 0.91).cos()).collect();
        let a = MatRef::rows(&a_buf, 4, 3).t();
        let b = MatRef::new(&b_buf, 4, 2, 4, 2);
        let mut out = vec![1.5f32; 3 * 5];
        matmul(MatMut::new(&mut out, 3, 2, 5), a, b, 2.0, true);
        for i in 0..3 {
            for j in 0..2 {
                let want: f32 = 1.5
                    + 2.0
                        * (0..4)
                            .map(|k| a_buf[k * 3 + i] * b_buf[k * 4 + 2 * j])
                            .sum::<f32>();
                assert!(
                    (out[i * 5 + j] - want).abs() < 1e-5,
                    "({i},{j}): {} vs {want}",
                    out[i * 5 + j]
                );
            }
            assert_eq!(
                &out[i * 5 + 2..i * 5 + 5],
                &[1.5; 3],
                "elements between rows are untouched"
            );
        }
    }

    #[test]
    fn dot_handles_tails() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 + (i % 5) as f32).collect();
        let want: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(x * y)).sum();
        assert!((f64::from(dot(&a, &b)) - want).abs() < 1e-3);
        assert_eq!(sum_sq(&[3.0, 4.0]), 25.0);
    }
}
