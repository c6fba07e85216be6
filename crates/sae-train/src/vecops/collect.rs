//! Branch-free collection of the entries of a row above a bound: with AVX-512 each 16 values are
//! one add, one compare and two in-register compresses whose 16 lanes are stored whole (the next
//! store overwrites the lanes past the count), so the scan runs at memory speed whatever the
//! candidates' pattern. AVX2 has no compress: each 8 values' mask picks a left-packing
//! permutation from a 256-entry table, applied with one lane permute per output.

use super::{Isa, Level};

/// Appends (z[j] + b[j], j) for every j with z[j] + b[j] > lo, in increasing j, to `val` and
/// `idx`. `z` and `b` have the same length.
#[inline(always)]
pub fn collect_above(
    isa: Isa,
    z: &[f32],
    b: &[f32],
    lo: f32,
    val: &mut Vec<f32>,
    idx: &mut Vec<u32>,
) {
    let n = z.len().min(b.len());
    let (z, b) = (&z[..n], &b[..n]);
    #[cfg(target_arch = "x86_64")]
    match isa.0 {
        // SAFETY: the CPU has the kernel's features (the level says so).
        Level::V4 => return unsafe { collect_vectors(16, x86::collect_v4, z, b, lo, val, idx) },
        Level::V3 => return unsafe { collect_vectors(8, x86::collect_v3, z, b, lo, val, idx) },
        Level::Base => {}
    }
    let _ = isa;
    collect_plain(z, b, 0, lo, val, idx)
}

/// A whole-vector kernel: `blocks` blocks of its lane width read from (z, b), the values above
/// `lo` and their indices stored at (out_v, out_i) whole vectors at a time; returns the count.
#[cfg(target_arch = "x86_64")]
type Kernel = unsafe fn(*const f32, *const f32, usize, f32, *mut f32, *mut u32) -> usize;

/// [`collect_above`] by a kernel of `lanes` lanes over the whole vectors of (z, b), then the
/// plain loop over the rest.
///
/// # Safety
/// The CPU has the features `kernel` is compiled for; `z` and `b` have the same length.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn collect_vectors(
    lanes: usize,
    kernel: Kernel,
    z: &[f32],
    b: &[f32],
    lo: f32,
    val: &mut Vec<f32>,
    idx: &mut Vec<u32>,
) {
    let n = z.len();
    let blocks = n / lanes;
    // Room for every value plus one whole vector past the last count.
    val.reserve(n + lanes);
    idx.reserve(n + lanes);
    let (v0, i0) = (val.len(), idx.len());
    // SAFETY: the loads read blocks * lanes <= n values of z and b; each store writes `lanes`
    // lanes at offset v0 + count <= v0 + lanes * blocks, inside the n + lanes reserved; the
    // lengths then cover only the counted lanes, all of them written.
    unsafe {
        let c = kernel(
            z.as_ptr(),
            b.as_ptr(),
            blocks,
            lo,
            val.as_mut_ptr().add(v0),
            idx.as_mut_ptr().add(i0),
        );
        val.set_len(v0 + c);
        idx.set_len(i0 + c);
    }
    let done = blocks * lanes;
    collect_plain(&z[done..], &b[done..], done, lo, val, idx);
}

/// The plain form of [`collect_above`] (indices offset by `base`).
#[inline(always)]
fn collect_plain(
    z: &[f32],
    b: &[f32],
    base: usize,
    lo: f32,
    val: &mut Vec<f32>,
    idx: &mut Vec<u32>,
) {
    for (j, (a, c)) in z.iter().zip(b).enumerate() {
        let v = a + c;
        if v > lo {
            val.push(v);
            idx.push((base + j) as u32);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// For each 8-bit mask, the indices of its set bits in increasing order, one per byte from
    /// the lowest (the unused high bytes are 0).
    const PACK: [u64; 256] = {
        let mut t = [0u64; 256];
        let mut m = 0;
        while m < 256 {
            let (mut v, mut c, mut i) = (0u64, 0, 0);
            while i < 8 {
                if (m >> i) & 1 == 1 {
                    v |= (i as u64) << (8 * c);
                    c += 1;
                }
                i += 1;
            }
            t[m] = v;
            m += 1;
        }
        t
    };

    /// `blocks` blocks of 8: the values above `lo` and their indices, left-packed by a table
    /// permutation and stored whole at the running count; returns the count.
    #[target_feature(enable = "avx2,popcnt")]
    pub unsafe fn collect_v3(
        z: *const f32,
        b: *const f32,
        blocks: usize,
        lo: f32,
        out_v: *mut f32,
        out_i: *mut u32,
    ) -> usize {
        let lov = _mm256_set1_ps(lo);
        let mut j = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let step = _mm256_set1_epi32(8);
        let mut c = 0usize;
        for k in 0..blocks {
            let v = _mm256_add_ps(_mm256_loadu_ps(z.add(8 * k)), _mm256_loadu_ps(b.add(8 * k)));
            let m = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(v, lov)) as u32;
            let perm = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(PACK[m as usize] as i64));
            _mm256_storeu_ps(out_v.add(c), _mm256_permutevar8x32_ps(v, perm));
            _mm256_storeu_si256(out_i.add(c) as *mut _, _mm256_permutevar8x32_epi32(j, perm));
            c += m.count_ones() as usize;
            j = _mm256_add_epi32(j, step);
        }
        c
    }

    /// `blocks` blocks of 16: the values above `lo` and their indices, compressed to the front of
    /// a vector and stored whole at the running count; returns the count.
    #[target_feature(enable = "avx512f,popcnt")]
    pub unsafe fn collect_v4(
        z: *const f32,
        b: *const f32,
        blocks: usize,
        lo: f32,
        out_v: *mut f32,
        out_i: *mut u32,
    ) -> usize {
        let lov = _mm512_set1_ps(lo);
        let mut j = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let step = _mm512_set1_epi32(16);
        let mut c = 0usize;
        for k in 0..blocks {
            let v = _mm512_add_ps(
                _mm512_loadu_ps(z.add(16 * k)),
                _mm512_loadu_ps(b.add(16 * k)),
            );
            let m = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, lov);
            _mm512_storeu_ps(out_v.add(c), _mm512_maskz_compress_ps(m, v));
            _mm512_storeu_si512(out_i.add(c) as *mut _, _mm512_maskz_compress_epi32(m, j));
            c += m.count_ones() as usize;
            j = _mm512_add_epi32(j, step);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Every ISA collects exactly what a filter over the row gives, for lengths with and without
    /// a partial block (of 8 and of 16), bounds that keep none, some and all, and ties at the
    /// bound (not kept).
    #[test]
    fn every_isa_collects_what_a_filter_keeps() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for n in [0, 5, 8, 9, 16, 33, 250] {
            let z: Vec<f32> = (0..n).map(|_| rng.random_range(-2f32..2.0)).collect();
            let mut b: Vec<f32> = (0..n).map(|_| rng.random_range(-1f32..1.0)).collect();
            if n > 3 {
                b[3] = 0.5 - z[3];
            }
            for lo in [-10.0, 0.5, 0.0, 10.0] {
                let want: Vec<(f32, u32)> = z
                    .iter()
                    .zip(&b)
                    .enumerate()
                    .filter(|(_, (a, c))| *a + *c > lo)
                    .map(|(j, (a, c))| (a + c, j as u32))
                    .collect();
                for isa in Isa::supported() {
                    let (mut v, mut i) = (vec![7.0], vec![9]);
                    collect_above(isa, &z, &b, lo, &mut v, &mut i);
                    let got: Vec<(f32, u32)> =
                        v[1..].iter().copied().zip(i[1..].iter().copied()).collect();
                    assert_eq!((v[0], i[0]), (7.0, 9), "existing entries kept");
                    assert_eq!(got, want, "n {n} lo {lo} {isa:?}");
                }
            }
        }
    }
}
