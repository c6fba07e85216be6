//! Single-threaded f32 matrix products on row-major buffers through `gemm` (the instances of a
//! toy model run in parallel instead), with a triple-loop reference and a test that they agree.

/// dst [r, c] = a [r, k] b [k, c] (+ dst when `acc`). `a_t` / `b_t`: the stored buffer is the
/// transpose ([k, r] / [c, k] row-major).
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    dst: &mut [f32],
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
    r: usize,
    k: usize,
    c: usize,
    acc: bool,
) {
    assert!(
        dst.len() == r * c && a.len() == r * k && b.len() == k * c,
        "matmul shapes"
    );
    if r == 0 || c == 0 {
        return;
    }
    if k == 0 {
        if !acc {
            dst.fill(0.0);
        }
        return;
    }
    if k * c <= 16 {
        // Tiny products (the n = 2, m = 1 phase diagram): gemm's setup dominates; loop instead.
        return matmul_tiny(dst, a, a_t, b, b_t, r, k, c, acc);
    }
    // (row stride, column stride) of the logical matrices.
    let (a_rs, a_cs) = if a_t {
        (1, r as isize)
    } else {
        (k as isize, 1)
    };
    let (b_rs, b_cs) = if b_t {
        (1, k as isize)
    } else {
        (c as isize, 1)
    };
    // SAFETY: the assert above bounds every index gemm forms from (r, c, k) and these strides
    // inside the three buffers; dst does not alias the inputs (&mut vs &).
    unsafe {
        gemm::gemm(
            r,
            c,
            k,
            dst.as_mut_ptr(),
            1,
            c as isize,
            acc,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn matmul_tiny(
    dst: &mut [f32],
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
    r: usize,
    k: usize,
    c: usize,
    acc: bool,
) {
    for i in 0..r {
        for j in 0..c {
            let mut s = 0f32;
            for l in 0..k {
                let av = if a_t { a[l * r + i] } else { a[i * k + l] };
                let bv = if b_t { b[j * k + l] } else { b[l * c + j] };
                s += av * bv;
            }
            let d = &mut dst[i * c + j];
            *d = if acc { *d + s } else { s };
        }
    }
}

/// Plain reference of [`matmul`].
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub fn matmul_reference(
    dst: &mut [f32],
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
    r: usize,
    k: usize,
    c: usize,
    acc: bool,
) {
    for i in 0..r {
        for j in 0..c {
            let mut s = 0f64;
            for l in 0..k {
                let av = if a_t { a[l * r + i] } else { a[i * k + l] };
                let bv = if b_t { b[j * k + l] } else { b[l * c + j] };
                s += av as f64 * bv as f64;
            }
            let d = &mut dst[i * c + j];
            *d = if acc { *d + s as f32 } else { s as f32 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_agrees_with_reference_in_every_layout() {
        for (r, k, c) in [(37, 19, 23), (64, 2, 1), (64, 1, 2), (2, 64, 1)] {
            check(r, k, c);
        }
    }

    fn check(r: usize, k: usize, c: usize) {
        let gen = |len: usize, s: f32| -> Vec<f32> {
            (0..len).map(|i| ((i as f32 + s) * 0.731).sin()).collect()
        };
        let (a, b) = (gen(r * k, 1.0), gen(k * c, 2.0));
        for (a_t, b_t, acc) in [
            (false, false, false),
            (true, false, true),
            (false, true, false),
            (true, true, true),
        ] {
            let mut got = gen(r * c, 3.0);
            let mut want = got.clone();
            matmul(&mut got, &a, a_t, &b, b_t, r, k, c, acc);
            matmul_reference(&mut want, &a, a_t, &b, b_t, r, k, c, acc);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-4, "{a_t} {b_t} {acc}: {g} vs {w}");
            }
        }
    }
}
