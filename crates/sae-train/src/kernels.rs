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

/// One operand of [`gemm_raw`]: its first element and (row, column) strides.
#[derive(Clone, Copy)]
struct Operand {
    ptr: *const f32,
    rs: isize,
    cs: isize,
}
// SAFETY: an operand is only ever read (the split product's tasks share it).
unsafe impl Send for Operand {}
unsafe impl Sync for Operand {}

/// dst [m, n] (row stride n) = a b (+ dst when `accumulate`) through `gemm`.
///
/// # Safety
/// Every element (i, l) of a [m, k] and (l, j) of b [k, n] that the strides address is readable,
/// and dst holds m * n elements that alias neither.
unsafe fn gemm_raw(
    dst: *mut f32,
    (m, n, k): (usize, usize, usize),
    a: Operand,
    b: Operand,
    accumulate: bool,
    par: gemm::Parallelism,
) {
    // SAFETY: forwarded to the caller.
    unsafe {
        gemm::gemm(
            m, n, k, dst, 1, n as isize, accumulate, a.ptr, a.cs, a.rs, b.ptr, b.cs, b.rs, 1.0,
            1.0, false, false, false, par,
        );
    }
}

/// Length of the reduction chunks of a split product (see [`splits_k`]).
const K_CHUNK: usize = 1024;

/// A long reduction into a small output (such as Z^T h over a batch) keeps both cores busy only
/// when the reduction is split: chunks of `K_CHUNK` in parallel, one thread each, summed in chunk
/// order (so the result depends on the shapes alone, never on the thread count).
fn splits_k(m: usize, n: usize, k: usize) -> bool {
    k >= 2 * K_CHUNK && k >= 4 * m.max(n)
}

/// Rows per block of a product split by rows (see [`splits_m`]).
const M_BLOCK: usize = 1024;

/// Largest right-hand operand (k x n elements) of a product split by rows.
const SPLIT_M_MAX_B: usize = 1 << 19;

/// A tall product with a small right-hand operand runs as blocks of `M_BLOCK` rows, one
/// single-threaded gemm each, in parallel: gemm's own threading of such products costs more than
/// packing b once per block (4096 x 20 x 128: 0.13 against 0.15 ms, 4096 x 384 x 123: 0.96
/// against 1.00 ms, and the 128 -> 1024 encoder 2.58 against 2.66 ms inside the TopK step, on an
/// AVX-512 Xeon), while a larger b (such as the 384 -> 6144 encoder, 1-3% slower by blocks) is
/// packed too often for it to pay. Taken only when there are at least as many blocks as
/// `threads` (and two), so that a machine with more cores keeps gemm's threading where the blocks
/// would leave cores idle. Either way each element sums over k in gemm's k-blocks, which depend on
/// k alone, so the result is the same bits (300-step BatchTopK weights with AuxK active came out
/// identical on 1, 2 and 8 threads).
fn splits_m(m: usize, n: usize, k: usize, threads: usize) -> bool {
    m >= M_BLOCK * threads.max(2) && k * n <= SPLIT_M_MAX_B
}

/// [`matmul_into`] for a product that [`splits_m`].
fn matmul_split_m(
    dst: &mut [f32],
    (n, k): (usize, usize),
    a: Operand,
    b: Operand,
    accumulate: bool,
) {
    use rayon::prelude::*;
    dst.par_chunks_mut(M_BLOCK * n)
        .enumerate()
        .for_each(|(blk, out)| {
            // The whole operands (not just their pointer fields) go into the closure.
            let (a, b) = (a, b);
            let rows = out.len() / n;
            // SAFETY: rows blk * M_BLOCK.. of a lie inside the operand `matmul_into` checked, and
            // `out` is exactly those rows of dst, this task's alone.
            unsafe {
                let a = Operand {
                    ptr: a.ptr.offset((blk * M_BLOCK) as isize * a.rs),
                    ..a
                };
                let par = gemm::Parallelism::None;
                gemm_raw(out.as_mut_ptr(), (rows, n, k), a, b, accumulate, par);
            }
        });
}

/// [`matmul_into`] for a product that [`splits_k`].
fn matmul_split_k(
    dst: &mut [f32],
    (m, n, k): (usize, usize, usize),
    a: Operand,
    b: Operand,
    accumulate: bool,
) {
    use rayon::prelude::*;
    let parts: Vec<Vec<f32>> = (0..k.div_ceil(K_CHUNK))
        .into_par_iter()
        .map(|c| {
            // The whole operands (not just their pointer fields) go into the closure.
            let (a, b) = (a, b);
            let (l0, kc) = (c * K_CHUNK, K_CHUNK.min(k - c * K_CHUNK));
            let mut part = vec![0f32; m * n];
            // SAFETY: columns l0..l0 + kc of a and rows l0..l0 + kc of b lie inside the operands
            // `matmul_into` checked; `part` is this task's own m * n buffer.
            unsafe {
                let a = Operand {
                    ptr: a.ptr.offset(l0 as isize * a.cs),
                    ..a
                };
                let b = Operand {
                    ptr: b.ptr.offset(l0 as isize * b.rs),
                    ..b
                };
                gemm_raw(
                    part.as_mut_ptr(),
                    (m, n, kc),
                    a,
                    b,
                    false,
                    gemm::Parallelism::None,
                );
            }
            part
        })
        .collect();
    dst.par_chunks_mut(n.max(1))
        .enumerate()
        .for_each(|(i, row)| {
            for (j, o) in row.iter_mut().enumerate() {
                let mut s = if accumulate { *o } else { 0.0 };
                for p in &parts {
                    s += p[i * n + j];
                }
                *o = s;
            }
        });
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
    let (ao, bo) = (
        Operand {
            ptr: a.data.as_ptr(),
            rs: a_rs,
            cs: a_cs,
        },
        Operand {
            ptr: b.data.as_ptr(),
            rs: b_rs,
            cs: b_cs,
        },
    );
    if splits_k(m, n, k) {
        return matmul_split_k(dst, (m, n, k), ao, bo, accumulate);
    }
    let threads = candle_core::utils::get_num_threads();
    if splits_m(m, n, k, threads) {
        return matmul_split_m(dst, (n, k), ao, bo, accumulate);
    }
    let par = if threads > 1 && m * n * k > 32 * 32 * 32 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above guarantee that every index gemm forms from (m, n, k) and the strides
    // stays inside `dst`, `a.data` and `b.data`; dst does not alias the inputs (&mut vs &).
    unsafe { gemm_raw(dst.as_mut_ptr(), (m, n, k), ao, bo, accumulate, par) }
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

/// dst [n, d] = a^T x for a [rows, n] and x [rows, d]: a gradient such as dW_enc^T = dz^T xc,
/// latent-major. When a is much wider than x (n > 2 d, as dz over every latent) gemm forms
/// x^T a [d, n] faster than a^T x (51 against 62 ms for 4096 x 6144 x 384, 4.0 against 4.9 ms for
/// 4096 x 1024 x 128 on an AVX-512 Xeon), so that one is formed in `scratch` and transposed into
/// dst; otherwise (such as AuxK's few dead columns) the direct product is the faster one.
pub fn matmul_tn_into(dst: &mut [f32], a: &[f32], x: &[f32], rows: usize, scratch: &mut Vec<f32>) {
    let (n, d) = (a.len() / rows.max(1), x.len() / rows.max(1));
    if n <= 2 * d {
        return matmul_into(dst, Mat::t(a, rows, n), Mat::new(x, rows, d), false);
    }
    scratch.resize(d * n, 0.0);
    matmul_into(scratch, Mat::t(x, rows, d), Mat::new(a, rows, n), false);
    transpose_into(dst, scratch, d, n);
}

/// Rows of dst per parallel task of a transpose.
const T_ROWS: usize = 64;

/// dst [cols, rows] = the transpose of src [rows, cols], in parallel blocks of dst rows, each moved
/// as 16 x 16 tiles through a local array (3x faster than element by element at 4096 x 492).
pub fn transpose_into(dst: &mut [f32], src: &[f32], rows: usize, cols: usize) {
    use rayon::prelude::*;
    assert!(
        src.len() == rows * cols && dst.len() == rows * cols,
        "transpose shapes"
    );
    if rows == 0 || cols == 0 {
        return;
    }
    dst.par_chunks_mut(T_ROWS * rows)
        .enumerate()
        .for_each(|(cb, out)| {
            let c0 = cb * T_ROWS;
            let nc = out.len() / rows;
            let mut tile = [[0f32; 16]; 16];
            for r0 in (0..rows).step_by(16) {
                let nr = 16.min(rows - r0);
                for cc in (0..nc).step_by(16) {
                    let w = 16.min(nc - cc);
                    for (i, t) in tile.iter_mut().enumerate().take(nr) {
                        t[..w].copy_from_slice(&src[(r0 + i) * cols + c0 + cc..][..w]);
                    }
                    for j in 0..w {
                        let o = &mut out[(cc + j) * rows + r0..][..nr];
                        for (i, v) in o.iter_mut().enumerate() {
                            *v = tile[i][j];
                        }
                    }
                }
            }
        });
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

    /// Two operands of `la` and `lb` values on small, differently strided grids.
    fn operands(la: usize, lb: usize) -> (Vec<f32>, Vec<f32>) {
        let a = (0..la).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
        let b = (0..lb).map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0).collect();
        (a, b)
    }

    /// Every element of `fast` within 1e-4 (relative, absolute below 1) of `slow`.
    fn assert_close(fast: &[f32], slow: &[f32], what: &str) {
        for (x, y) in fast.iter().zip(slow) {
            assert!((x - y).abs() < 1e-4 * y.abs().max(1.0), "{what}: {x} {y}");
        }
    }

    /// gemm against the triple loop for an (m, k, n) product, every transpose, with and without
    /// accumulation.
    fn agrees_for_all_transposes(m: usize, k: usize, n: usize) {
        let (a, b) = operands(m * k, k * n);
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
                assert_close(&fast, &slow, &format!("{m}x{k}x{n} {ta} {tb} {acc}"));
            }
        }
    }

    #[test]
    fn gemm_agrees_with_reference_for_all_transposes() {
        agrees_for_all_transposes(37, 45, 29);
        // A long reduction into a small output takes the split path.
        assert!(!splits_k(37, 29, 45) && splits_k(5, 7, 2 * K_CHUNK + 77));
        agrees_for_all_transposes(5, 2 * K_CHUNK + 77, 7);
        // A tall product with a small b goes by blocks of rows (a partial last block).
        assert!(splits_m(2 * M_BLOCK + 37, 13, 9, 2) && !splits_m(2 * M_BLOCK - 1, 13, 9, 1));
        assert!(!splits_m(4096, 6144, 384, 2) && !splits_m(4096, 13, 9, 8));
        let threads = candle_core::utils::get_num_threads();
        let m = M_BLOCK * threads.max(2) + 37;
        assert!(splits_m(m, 13, 9, threads));
        agrees_for_all_transposes(m, 9, 13);
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

    #[test]
    fn transposed_products_agree_with_the_reference() {
        // Narrow a (direct product) and wide a (formed as x^T a, then transposed), ragged sizes.
        for (rows, n, d) in [(33, 20, 17), (29, 77, 5), (40, 300, 33)] {
            let (a, x) = operands(rows * n, rows * d);
            let mut slow = vec![0f32; n * d];
            matmul_ref(&mut slow, Mat::t(&a, rows, n), Mat::new(&x, rows, d), false);
            let (mut fast, mut scratch) = (vec![f32::NAN; n * d], Vec::new());
            matmul_tn_into(&mut fast, &a, &x, rows, &mut scratch);
            assert_close(&fast, &slow, &format!("{rows}x{n}x{d}"));
        }
        // The blocked transpose against the plain one, sizes off the block grid.
        for (rows, cols) in [(1, 1), (3, 70), (65, 33), (100, 129), (17, 200)] {
            let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let mut out = vec![0f32; rows * cols];
            transpose_into(&mut out, &src, rows, cols);
            assert_eq!(
                out,
                crate::params::transpose(&src, rows, cols),
                "{rows}x{cols}"
            );
        }
    }
}
