//! f32 matrix products on strided host buffers through `gemm` (the kernel candle's CPU matmul calls),
//! without candle's per-call layout work, with a plain triple-loop reference and a test that they agree.

/// A read-only strided matrix: element (i, j) is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    /// The buffer the matrix lives in (it may hold more than the matrix).
    pub data: &'a [f32],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Row stride in elements.
    pub rs: usize,
    /// Column stride in elements.
    pub cs: usize,
}

impl<'a> View<'a> {
    /// A dense row-major matrix.
    pub fn dense(data: &'a [f32], rows: usize, cols: usize) -> View<'a> {
        View {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// Rows `r0..r0 + rows`, columns `c0..c0 + cols` of a row-major buffer with row stride `rs`.
    pub fn block(
        data: &'a [f32],
        rs: usize,
        r0: usize,
        c0: usize,
        rows: usize,
        cols: usize,
    ) -> Self {
        View {
            data: &data[r0 * rs + c0..],
            rows,
            cols,
            rs,
            cs: 1,
        }
    }

    /// The transpose (no copy).
    pub fn t(self) -> View<'a> {
        View {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// Whether a product runs on the rayon pool or on the calling thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Par {
    /// The calling thread only (inside a parallel loop).
    #[cfg_attr(not(test), allow(dead_code))]
    Serial,
    /// All rayon threads.
    Pool,
}

/// dst (row-major, row stride `dst_rs`) = scale * a b (+ dst when `accumulate`).
///
/// Panics when the shapes disagree or a view reaches outside its buffer.
pub fn matmul(
    dst: &mut [f32],
    dst_rs: usize,
    a: View<'_>,
    b: View<'_>,
    scale: f32,
    accumulate: bool,
    par: Par,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(b.rows == k, "matmul: inner dimensions {k} and {}", b.rows);
    assert!(a.fits() && b.fits(), "matmul: operand outside its buffer");
    assert!(
        m == 0 || n == 0 || (m - 1) * dst_rs + n <= dst.len(),
        "matmul: destination too small"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                dst[i * dst_rs..i * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    let threads = rayon::current_num_threads();
    let par = match par {
        Par::Pool if threads > 1 && m * n * k > 64 * 64 * 64 => gemm::Parallelism::Rayon(threads),
        _ => gemm::Parallelism::None,
    };
    // SAFETY: the asserts above keep every index gemm forms from (m, n, k) and the strides inside
    // `dst`, `a.data` and `b.data`; dst is a unique borrow, so it aliases neither input.
    unsafe { raw_gemm(dst.as_mut_ptr(), dst_rs, a, b, scale, accumulate, par) }
}

/// The one gemm call: dst = scale * a b (+ dst when `accumulate`).
///
/// # Safety
/// The operands must fit their buffers, `dst` must be valid for writes at every `i * dst_rs + j`
/// (i < a.rows, j < b.cols), and nothing else may access those elements during the call.
unsafe fn raw_gemm(
    dst: *mut f32,
    dst_rs: usize,
    a: View<'_>,
    b: View<'_>,
    scale: f32,
    accumulate: bool,
    par: gemm::Parallelism,
) {
    // SAFETY: the caller's promise, passed on.
    unsafe {
        gemm::gemm(
            a.rows,
            b.cols,
            a.cols,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            scale,
            false,
            false,
            false,
            par,
        );
    }
}

/// dst = scale * a b for a destination only reachable by raw pointer (a tile of a buffer that other
/// threads write other tiles of), on the calling thread.
///
/// # Safety
/// `dst` must be valid for writes at every `i * dst_rs + j` (i < a.rows, j < b.cols), and no other thread
/// may read or write those elements during the call.
pub unsafe fn matmul_tile(dst: *mut f32, dst_rs: usize, a: View<'_>, b: View<'_>, scale: f32) {
    assert!(
        b.rows == a.cols && a.fits() && b.fits() && a.cols > 0,
        "matmul_tile shapes"
    );
    // SAFETY: the operands were checked above; the destination is the caller's promise.
    unsafe { raw_gemm(dst, dst_rs, a, b, scale, false, gemm::Parallelism::None) }
}

/// The plain triple loop with [`matmul`]'s contract (f64 sums): the reference.
#[cfg(test)]
fn matmul_ref(
    dst: &mut [f32],
    dst_rs: usize,
    a: View<'_>,
    b: View<'_>,
    scale: f32,
    accumulate: bool,
) {
    for i in 0..a.rows {
        for j in 0..b.cols {
            let mut s = 0f64;
            for l in 0..a.cols {
                s += a.data[i * a.rs + l * a.cs] as f64 * b.data[l * b.rs + j * b.cs] as f64;
            }
            let d = &mut dst[i * dst_rs + j];
            let v = scale as f64 * s;
            *d = if accumulate { *d + v as f32 } else { v as f32 };
        }
    }
}

/// y [n, out] = x [n, in] w [in, out] + bias, on the pool.
pub fn linear(x: &[f32], w: &[f32], bias: Option<&[f32]>, d_in: usize, d_out: usize) -> Vec<f32> {
    let mut y = vec![0.0; x.len() / d_in * d_out];
    linear_into(&mut y, x, w, bias, d_in, d_out);
    y
}

/// [`linear`] into `y` [n, out], whose old contents do not matter (every element is written).
pub fn linear_into(
    y: &mut [f32],
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    d_in: usize,
    d_out: usize,
) {
    let n = x.len() / d_in;
    assert_eq!(y.len(), n * d_out, "linear: output size");
    if let Some(b) = bias {
        for row in y.chunks_exact_mut(d_out) {
            row.copy_from_slice(b);
        }
    }
    matmul(
        y,
        d_out,
        View::dense(x, n, d_in),
        View::dense(w, d_in, d_out),
        1.0,
        bias.is_some(),
        Par::Pool,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_gemm_agrees_with_triple_loop() {
        let (m, k, n) = (70, 45, 66);
        let a: Vec<f32> = (0..m * k * 2)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0)
            .collect();
        let b: Vec<f32> = (0..k * n * 3)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0)
            .collect();
        // a: a column block of a wider buffer; b: read transposed from a [n, 3k] buffer.
        let av = View::block(&a, 2 * k, 0, k, m, k);
        let bv = View::block(&b, 3 * k, 0, 1, n, k).t();
        for (acc, par) in [(false, Par::Pool), (true, Par::Serial), (true, Par::Pool)] {
            let init: Vec<f32> = (0..m * (n + 3)).map(|i| i as f32 * 0.01).collect();
            let (mut fast, mut slow) = (init.clone(), init.clone());
            matmul(&mut fast, n + 3, av, bv, 0.5, acc, par);
            matmul_ref(&mut slow, n + 3, av, bv, 0.5, acc);
            for (x, y) in fast.iter().zip(&slow) {
                assert!((x - y).abs() < 1e-4 * y.abs().max(1.0), "{acc}: {x} {y}");
            }
        }
        // Hand example: [1 2; 3 4] [5; 6] + [1; 1] = [18; 40].
        let y = linear(&[1., 2., 3., 4.], &[5., 6.], Some(&[1.0]), 2, 1);
        assert_eq!(y, vec![18.0, 40.0]);
    }
}
