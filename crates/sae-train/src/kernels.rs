//! Dense f32 matrix products on row-major buffers through `gemm` (multi-threaded like candle's own
//! matmul: candle's thread count), with a plain triple-loop reference and a test that they agree.

/// A row-major matrix view: `rows` x `cols`, optionally read transposed.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    /// Elements, row-major, `rows * cols` of them.
    pub data: &'a [f32],
    /// Stored rows.
    pub rows: usize,
    /// Stored columns.
    pub cols: usize,
    /// Use the transpose of the stored matrix.
    pub t: bool,
}

impl<'a> Mat<'a> {
    /// The stored matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            t: false,
        }
    }

    /// The transpose of the stored matrix.
    pub fn t(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            t: true,
        }
    }

    /// (rows, cols) as used, and (row stride, column stride) in elements.
    fn dims_strides(&self) -> ((usize, usize), (isize, isize)) {
        let (rs, cs) = (self.cols as isize, 1isize);
        if self.t {
            ((self.cols, self.rows), (cs, rs))
        } else {
            ((self.rows, self.cols), (rs, cs))
        }
    }
}

/// dst [m, n] (row-major) = a [m, k] b [k, n] (+ dst when `accumulate`).
pub fn matmul_into(dst: &mut [f32], a: Mat<'_>, b: Mat<'_>, accumulate: bool) {
    let ((m, k), (a_rs, a_cs)) = a.dims_strides();
    let ((k2, n), (b_rs, b_cs)) = b.dims_strides();
    assert!(k == k2 && dst.len() == m * n, "matmul shapes");
    assert!(a.data.len() == a.rows * a.cols && b.data.len() == b.rows * b.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.iter_mut().for_each(|v| *v = 0.0);
        }
        return;
    }
    let threads = candle_core::utils::get_num_threads();
    let par = if threads > 1 && m * n * k > 32 * 32 * 32 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above guarantee that every index gemm forms from (m, n, k) and the strides
    // stays inside `dst`, `a.data` and `b.data`; dst does not alias the inputs (&mut vs &).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// Plain triple loop with the same contract as [`matmul_into`] (the reference).
pub fn matmul_ref(dst: &mut [f32], a: Mat<'_>, b: Mat<'_>, accumulate: bool) {
    let ((m, k), (a_rs, a_cs)) = a.dims_strides();
    let ((_, n), (b_rs, b_cs)) = b.dims_strides();
    for i in 0..m {
        for j in 0..n {
            let mut s = 0f64;
            for l in 0..k {
                let av = a.data[(i as isize * a_rs + l as isize * a_cs) as usize];
                let bv = b.data[(l as isize * b_rs + j as isize * b_cs) as usize];
                s += av as f64 * bv as f64;
            }
            let d = &mut dst[i * n + j];
            *d = if accumulate { *d + s as f32 } else { s as f32 };
        }
    }
}

/// xc = x - b_dec [B, d_in] (a transcoder: xc = x) and z = xc W_enc + b_enc [B, d_sae] for
/// x: [B, d_in].
pub fn pre_acts(x: &[f32], p: &crate::params::Params) -> (Vec<f32>, Vec<f32>) {
    let (d_in, d_sae) = (p.d_in, p.d_sae);
    let b = x.len() / d_in;
    let xc: Vec<f32> = match p.transcoder {
        true => x.to_vec(),
        false => x
            .chunks(d_in)
            .flat_map(|r| r.iter().zip(&p.b_dec).map(|(a, c)| a - c))
            .collect(),
    };
    let mut z: Vec<f32> = Vec::with_capacity(b * d_sae);
    for _ in 0..b {
        z.extend_from_slice(&p.b_enc);
    }
    matmul_into(
        &mut z,
        Mat::new(&xc, b, d_in),
        Mat::new(&p.w_enc, d_in, d_sae),
        true,
    );
    (xc, z)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_agrees_with_reference_for_all_transposes() {
        let (m, k, n) = (37, 45, 29);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0)
            .collect();
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let am = if ta {
                Mat::t(&a, k, m)
            } else {
                Mat::new(&a, m, k)
            };
            let bm = if tb {
                Mat::t(&b, n, k)
            } else {
                Mat::new(&b, k, n)
            };
            let init: Vec<f32> = (0..m * n).map(|i| i as f32 * 0.01).collect();
            for acc in [false, true] {
                let (mut fast, mut slow) = (init.clone(), init.clone());
                matmul_into(&mut fast, am, bm, acc);
                matmul_ref(&mut slow, am, bm, acc);
                for (x, y) in fast.iter().zip(&slow) {
                    assert!(
                        (x - y).abs() < 1e-4 * y.abs().max(1.0),
                        "{ta} {tb} {acc}: {x} {y}"
                    );
                }
            }
        }
        // Hand example: [1 2; 3 4] [5; 6] = [17; 39].
        let mut d = [0.0; 2];
        matmul_into(
            &mut d,
            Mat::new(&[1., 2., 3., 4.], 2, 2),
            Mat::new(&[5., 6.], 2, 1),
            false,
        );
        assert_eq!(d, [17.0, 39.0]);
    }
}
