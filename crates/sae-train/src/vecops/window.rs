//! JumpReLU's straight-through kernel window as a 16-lane mask: |((z + b) - t) / eps| < 1/2 with
//! the same float operations, in the same order, as the scalar test, so every form finds the
//! same entries.

use super::{Isa, Level};

/// Bit l set where |((z[l] + b[l]) - t[l]) / eps| < 1/2, for 16 lanes.
#[inline(always)]
pub fn window16(isa: Isa, z: &[f32], b: &[f32], t: &[f32], eps: f32) -> u32 {
    let (z, b, t) = (&z[..16], &b[..16], &t[..16]);
    #[cfg(target_arch = "x86_64")]
    match isa.0 {
        // SAFETY: the CPU has the features; each slice holds 16 values.
        Level::V4 => return unsafe { x86::window16_v4(z.as_ptr(), b.as_ptr(), t.as_ptr(), eps) },
        Level::V3 => return unsafe { x86::window16_v3(z.as_ptr(), b.as_ptr(), t.as_ptr(), eps) },
        Level::Base => {}
    }
    let _ = isa;
    window16_plain(z, b, t, eps)
}

/// The plain form of [`window16`].
#[inline(always)]
fn window16_plain(z: &[f32], b: &[f32], t: &[f32], eps: f32) -> u32 {
    let mut m = 0u32;
    for l in 0..16 {
        m |= ((((z[l] + b[l]) - t[l]) / eps).abs() < 0.5) as u32 * (1 << l);
    }
    m
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// [`super::window16`] with AVX-512: 16 lanes in one register (|q| by clearing the sign).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn window16_v4(z: *const f32, b: *const f32, t: *const f32, eps: f32) -> u32 {
        let v = _mm512_add_ps(_mm512_loadu_ps(z), _mm512_loadu_ps(b));
        let q = _mm512_div_ps(_mm512_sub_ps(v, _mm512_loadu_ps(t)), _mm512_set1_ps(eps));
        let a = _mm512_abs_ps(q);
        _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, _mm512_set1_ps(0.5)) as u32
    }

    /// [`super::window16`] with AVX2: two halves of 8 lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn window16_v3(z: *const f32, b: *const f32, t: *const f32, eps: f32) -> u32 {
        let sign = _mm256_set1_ps(-0.0);
        let half = |o: usize| {
            let v = _mm256_add_ps(_mm256_loadu_ps(z.add(o)), _mm256_loadu_ps(b.add(o)));
            let d = _mm256_sub_ps(v, _mm256_loadu_ps(t.add(o)));
            let a = _mm256_andnot_ps(sign, _mm256_div_ps(d, _mm256_set1_ps(eps)));
            let c = _mm256_cmp_ps::<_CMP_LT_OQ>(a, _mm256_set1_ps(0.5));
            _mm256_movemask_ps(c) as u32
        };
        half(0) | (half(8) << 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_windows_equal_the_scalar_test() {
        // Values on and around both edges of the window (strict <), negative zero, NaN (never
        // inside) and widths that make the division round.
        let pool = super::super::EDGE_VALUES;
        let (mut inside, mut total) = (0, 0);
        for (c, eps) in [1.0f32, 0.3, 4.0, 1e-3].into_iter().enumerate() {
            for t in 0..300usize {
                let pick = |i: usize, s: usize| pool[(i * s + t * 7 + i * i + c) % pool.len()];
                let z: Vec<f32> = (0..16).map(|i| pick(i, 3) * eps).collect();
                let b: Vec<f32> = (0..16).map(|i| pick(i, 5) * 0.5 * eps).collect();
                let th: Vec<f32> = (0..16).map(|i| pick(i, 11) * eps).collect();
                let mut want = 0u32;
                for l in 0..16 {
                    if (((z[l] + b[l]) - th[l]) / eps).abs() < 0.5 {
                        want |= 1 << l;
                    }
                }
                inside += want.count_ones();
                total += 16;
                for isa in Isa::supported() {
                    assert_eq!(
                        window16(isa, &z, &b, &th, eps),
                        want,
                        "eps {eps} case {t} {isa:?}"
                    );
                }
            }
        }
        // Both sides of the window occur.
        assert!(
            inside > total / 10 && inside < total * 9 / 10,
            "{inside} of {total}"
        );
    }
}
