//! Vectorised f32 building blocks of the fast training passes.
//!
//! The bodies are plain Rust written so that LLVM vectorises them (fixed-width lane arrays, several
//! independent accumulators). [`simd_dispatch!`] compiles a caller's whole per-row or per-tile
//! kernel once for AVX-512, once for AVX2 + FMA and once for the baseline target, and picks one at
//! run time: the helpers here are `#[inline(always)]` so that they take the features of the kernel
//! they are inlined into. Summation order depends only on the lengths, never on the chosen path's
//! thread count, so results are deterministic for a machine.

/// Lanes of the accumulators (two AVX-512 registers).
const LANES: usize = 32;

pub(crate) use sae_simd::{level, simd_dispatch, Level};

mod collect;
mod window;
pub use collect::collect_above;
pub use window::window16;

/// sum_i a_i b_i over the common length.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0f32;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail += x * y;
    }
    hsum(&acc) + tail
}

/// y += a x over the common length.
#[inline(always)]
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// y += c[0] x[0] + c[1] x[1] + c[2] x[2] + c[3] x[3] over the length of y (one load and store of
/// y for four rows).
#[inline(always)]
pub fn axpy4(y: &mut [f32], c: [f32; 4], x: [&[f32]; 4]) {
    let d = y.len();
    let (x0, x1, x2, x3) = (&x[0][..d], &x[1][..d], &x[2][..d], &x[3][..d]);
    for ((((o, w0), w1), w2), w3) in y.iter_mut().zip(x0).zip(x1).zip(x2).zip(x3) {
        *o += c[0] * w0 + c[1] * w1 + c[2] * w2 + c[3] * w3;
    }
}

/// out = base + sum_n coef[n] rows[idx[n]] (rows of width d in `rows`), four rows at a time so
/// that each load and store of `out` serves four of them.
#[inline(always)]
pub fn gather_rows_into(
    out: &mut [f32],
    base: &[f32],
    idx: &[u32],
    coef: &[f32],
    rows: &[f32],
    d: usize,
) {
    let out = &mut out[..d];
    out.copy_from_slice(&base[..d]);
    let n_all = idx.len().min(coef.len());
    let mut n = 0;
    while n + 4 <= n_all {
        let row = |q: usize| &rows[idx[n + q] as usize * d..][..d];
        let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
        axpy4(
            out,
            [coef[n], coef[n + 1], coef[n + 2], coef[n + 3]],
            [r0, r1, r2, r3],
        );
        n += 4;
    }
    for m in n..n_all {
        axpy(out, coef[m], &rows[idx[m] as usize * d..][..d]);
    }
}

/// out[n] = v . rows[idx[n]] (rows of width d), four rows at a time sharing each load of v.
#[inline(always)]
pub fn dots_gathered(out: &mut [f32], v: &[f32], idx: &[u32], rows: &[f32], d: usize) {
    const W: usize = 16;
    let v = &v[..d];
    let full = d / W * W;
    let mut n = 0;
    while n + 4 <= idx.len() {
        let row = |q: usize| &rows[idx[n + q] as usize * d..][..d];
        let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
        let (mut a0, mut a1, mut a2, mut a3) = ([0f32; W], [0f32; W], [0f32; W], [0f32; W]);
        for ((((vc, c0), c1), c2), c3) in v[..full]
            .chunks_exact(W)
            .zip(r0.chunks_exact(W))
            .zip(r1.chunks_exact(W))
            .zip(r2.chunks_exact(W))
            .zip(r3.chunks_exact(W))
        {
            for l in 0..W {
                a0[l] += vc[l] * c0[l];
                a1[l] += vc[l] * c1[l];
                a2[l] += vc[l] * c2[l];
                a3[l] += vc[l] * c3[l];
            }
        }
        for (q, (a, r)) in [(a0, r0), (a1, r1), (a2, r2), (a3, r3)].iter().enumerate() {
            let tail: f32 = (full..d).map(|l| v[l] * r[l]).sum();
            out[n + q] = a.iter().sum::<f32>() + tail;
        }
        n += 4;
    }
    for m in n..idx.len() {
        out[m] = dot(v, &rows[idx[m] as usize * d..][..d]);
    }
}

/// out = a - b element-wise.
#[inline(always)]
pub fn sub_into(out: &mut [f32], a: &[f32], b: &[f32]) {
    for ((o, a), b) in out.iter_mut().zip(a).zip(b) {
        *o = a - b;
    }
}

/// Bit l set where z[l] + b[l] > lo[l], for 16 lanes; callers visit the set bits only. One
/// vector add, compare and mask move where the CPU has AVX-512 or AVX2 (LLVM does not find that
/// form from the plain loop, which stays as the baseline). Callers make the [`Isa`] once outside
/// their loops: asking [`level`] here was a function call (and a `vzeroupper`) every 16 values.
#[inline(always)]
pub fn mask16(isa: Isa, z: &[f32], b: &[f32], lo: &[f32]) -> u32 {
    let (z, b, lo) = (&z[..16], &b[..16], &lo[..16]);
    #[cfg(target_arch = "x86_64")]
    match isa.0 {
        // SAFETY: the CPU has the features; each slice holds 16 values.
        Level::V4 => return unsafe { x86::mask16_v4(z.as_ptr(), b.as_ptr(), lo.as_ptr()) },
        Level::V3 => return unsafe { x86::mask16_v3(z.as_ptr(), b.as_ptr(), lo.as_ptr()) },
        Level::Base => {}
    }
    mask16_plain(z, b, lo)
}

/// The plain form of [`mask16`] (the reference its vector forms are tested against).
#[inline(always)]
fn mask16_plain(z: &[f32], b: &[f32], lo: &[f32]) -> u32 {
    let mut m = 0u32;
    for l in 0..16 {
        m |= ((z[l] + b[l] > lo[l]) as u32) << l;
    }
    m
}

/// Bit l set where z[l] + b[l] > lo, for 16 lanes (one bound for all of them).
#[inline(always)]
pub fn mask16_above(isa: Isa, z: &[f32], b: &[f32], lo: f32) -> u32 {
    mask16(isa, z, b, &[lo; 16])
}

/// The instruction-set level of this CPU, read once and carried into hot loops. Only
/// [`Isa::detect`] (and [`Isa::base`]) make one, so a vector form never runs on a CPU without it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Isa(Level);

impl Isa {
    /// The best level this CPU supports.
    #[inline]
    pub fn detect() -> Isa {
        Isa(level())
    }

    /// The baseline, valid everywhere (the plain forms).
    #[cfg(test)]
    fn base() -> Isa {
        Isa(Level::Base)
    }

    /// Every level this CPU supports, best first (tests run each).
    #[cfg(test)]
    fn supported() -> Vec<Isa> {
        match level() {
            Level::V4 => vec![Isa(Level::V4), Isa(Level::V3), Isa(Level::Base)],
            Level::V3 => vec![Isa(Level::V3), Isa(Level::Base)],
            Level::Base => vec![Isa(Level::Base)],
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// [`super::mask16`] with AVX-512: 16 lanes in one register.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn mask16_v4(z: *const f32, b: *const f32, lo: *const f32) -> u32 {
        let v = _mm512_add_ps(_mm512_loadu_ps(z), _mm512_loadu_ps(b));
        _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, _mm512_loadu_ps(lo)) as u32
    }

    /// [`super::mask16`] with AVX2: two halves of 8 lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn mask16_v3(z: *const f32, b: *const f32, lo: *const f32) -> u32 {
        let half = |o: usize| {
            let v = _mm256_add_ps(_mm256_loadu_ps(z.add(o)), _mm256_loadu_ps(b.add(o)));
            let c = _mm256_cmp_ps::<_CMP_GT_OQ>(v, _mm256_loadu_ps(lo.add(o)));
            _mm256_movemask_ps(c) as u32
        };
        half(0) | (half(8) << 8)
    }
}

/// Values around the bounds of the lane tests (zero of both signs, halves, NaN), for their tests.
#[cfg(test)]
const EDGE_VALUES: [f32; 12] = [
    -1.5,
    -0.0,
    0.0,
    0.25,
    0.5,
    0.75,
    1.0,
    f32::NAN,
    2.0,
    -0.25,
    0.1,
    3.0,
];

/// Sum of the lanes in a fixed pairwise order.
#[inline(always)]
fn hsum(acc: &[f32; LANES]) -> f32 {
    let mut h = [0f32; 16];
    for l in 0..16 {
        h[l] = acc[l] + acc[l + 16];
    }
    let mut q = [0f32; 8];
    for l in 0..8 {
        q[l] = h[l] + h[l + 8];
    }
    (q[0] + q[4]) + (q[1] + q[5]) + ((q[2] + q[6]) + (q[3] + q[7]))
}

#[cfg(test)]
mod tests {
    use super::*;

    simd_dispatch! {
        fn dispatched_dot(a: &[f32], b: &[f32]) -> f32 { dot(a, b) }
    }

    simd_dispatch! {
        fn dispatched_mask(z: &[f32], b: &[f32], lo: &[f32]) -> u32 {
            mask16(Isa::detect(), z, b, lo)
        }
    }

    #[test]
    fn vector_masks_equal_the_plain_compare() {
        // Values around the bounds, equal ones (strict >), negative zero and NaN (never above).
        let pool = EDGE_VALUES;
        for t in 0..200usize {
            let pick = |i: usize, s: usize| pool[(i * s + t * 7 + i * i) % pool.len()];
            let z: Vec<f32> = (0..16).map(|i| pick(i, 3)).collect();
            let b: Vec<f32> = (0..16).map(|i| pick(i, 5) * 0.5).collect();
            let lo: Vec<f32> = (0..16).map(|i| pick(i, 11)).collect();
            let mut want = 0u32;
            for l in 0..16 {
                if z[l] + b[l] > lo[l] {
                    want |= 1 << l;
                }
            }
            for isa in Isa::supported() {
                assert_eq!(mask16(isa, &z, &b, &lo), want, "case {t} {isa:?}");
                let one = mask16(Isa::base(), &z, &b, &[lo[3]; 16]);
                assert_eq!(mask16_above(isa, &z, &b, lo[3]), one, "case {t} {isa:?}");
            }
            assert_eq!(dispatched_mask(&z, &b, &lo), want, "case {t}");
        }
    }

    simd_dispatch! {
        fn dispatched_gathers(
            out: &mut [f32], dots: &mut [f32], base: &[f32], idx: &[u32], coef: &[f32],
            rows: &[f32], d: usize,
        ) {
            gather_rows_into(out, base, idx, coef, rows, d);
            dots_gathered(dots, base, idx, rows, d);
        }
    }

    #[test]
    fn gathered_sums_and_dots_agree_with_f64_loops() {
        // Widths below, at and beyond one register tile; 0 to 9 gathered rows (not multiples of 4).
        for d in [5usize, 16, 127, 128, 130, 384, 400] {
            let n_rows = 11;
            let rows: Vec<f32> = (0..n_rows * d)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
                .collect();
            let base: Vec<f32> = (0..d)
                .map(|i| ((i * 13 % 29) as f32 - 14.0) / 7.0)
                .collect();
            for n in 0..10usize {
                let idx: Vec<u32> = (0..n).map(|q| ((q * 7 + 3) % n_rows) as u32).collect();
                let coef: Vec<f32> = (0..n).map(|q| (q as f32 - 4.5) / 3.0).collect();
                let (mut out, mut dots) = (vec![0f32; d], vec![0f32; n]);
                dispatched_gathers(&mut out, &mut dots, &base, &idx, &coef, &rows, d);
                for c in 0..d {
                    let want: f64 = base[c] as f64
                        + idx
                            .iter()
                            .zip(&coef)
                            .map(|(&j, &a)| a as f64 * rows[j as usize * d + c] as f64)
                            .sum::<f64>();
                    assert!(
                        (out[c] as f64 - want).abs() < 1e-4 * want.abs().max(1.0),
                        "d {d} n {n} col {c}"
                    );
                }
                for (q, &j) in idx.iter().enumerate() {
                    let want: f64 = (0..d)
                        .map(|c| base[c] as f64 * rows[j as usize * d + c] as f64)
                        .sum();
                    assert!(
                        (dots[q] as f64 - want).abs() < 1e-4 * want.abs().max(1.0),
                        "d {d} n {n} dot {q}"
                    );
                }
            }
        }
    }

    #[test]
    fn dot_and_axpy_agree_with_f64_loops() {
        for n in [0usize, 1, 7, 31, 32, 33, 100, 384, 777] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0).collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            for got in [dot(&a, &b), dispatched_dot(&a, &b)] {
                assert!(
                    (got as f64 - want).abs() < 1e-4 * want.abs().max(1.0),
                    "{n}"
                );
            }
            let mut y = b.clone();
            axpy(&mut y, 0.5, &a);
            for i in 0..n {
                assert_eq!(y[i], b[i] + 0.5 * a[i]);
            }
        }
    }
}
