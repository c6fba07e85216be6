//! Branch-free f32 exp / erf / tanh that the compiler vectorises, and the activations built on them
//! (exact-erf GELU, tanh GELU, SiLU) as passes over whole buffers; tests check them against f64 std.

use rayon::prelude::*;
use sae_simd::simd_dispatch;

/// Accumulator lanes of the sums and maxima below (one AVX-512 register; two AVX2 ones).
const LANES: usize = 16;

/// Elements per parallel task of an elementwise pass.
const CHUNK: usize = 1 << 14;

/// e^x, relative error ~2e-7 over the f32 range; x below -87 gives ~1e-38 (callers skip masked entries).
/// Only float and integer bit operations (no float-to-int cast), so loops over it vectorise fully.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // 1.5 * 2^23: adding it rounds to the nearest integer n, which then sits in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    const MAGIC_BITS: u32 = 0x4B40_0000;
    let x = x.clamp(-87.0, 88.0);
    let kf = x * LOG2E + MAGIC;
    let n = kf - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0 / 5040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    // 2^n from n + 127 in the exponent field (n is in [-126, 127] after the clamp).
    let scale = f32::from_bits(kf.to_bits().wrapping_sub(MAGIC_BITS - 127) << 23);
    p * scale
}

/// erf(x), absolute error ~2e-7 (Abramowitz & Stegun 7.1.26 with the exp above).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let p = 1.061_405_4;
    let p = p * t - 1.453_152;
    let p = p * t + 1.421_413_8;
    let p = p * t - 0.284_496_74;
    let p = p * t + 0.254_829_6;
    let y = 1.0 - p * t * exp(-a * a);
    y.copysign(x)
}

/// tanh(x) = 1 - 2 / (1 + e^{2x}).
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (1.0 + exp(2.0 * x))
}

/// x Phi(x) with the exact (erf) Gaussian CDF, as BERT's `gelu`.
#[inline(always)]
pub fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// GPT-2's `gelu_new`: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
#[inline(always)]
pub fn gelu_tanh(x: f32) -> f32 {
    const C: f32 = 0.797_884_6;
    0.5 * x * (1.0 + tanh(C * (x + 0.044_715 * x * x * x)))
}

/// x sigmoid(x).
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// Sum in [`LANES`] lanes (vectorises; order differs from a serial sum by rounding only).
#[inline(always)]
pub fn lane_sum(xs: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Sum of f(x) in [`LANES`] lanes.
#[inline(always)]
pub fn lane_sum_map(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// xs = e^(xs - shift) in place; -> their sum, in [`LANES`] lanes (one pass for softmax's numerators and
/// denominator).
#[inline(always)]
pub fn exp_sum_inplace(xs: &mut [f32], shift: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut chunks = xs.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *v = exp(*v - shift);
            *a += *v;
        }
    }
    let mut tail = 0.0;
    for v in chunks.into_remainder() {
        *v = exp(*v - shift);
        tail += *v;
    }
    acc.iter().sum::<f32>() + tail
}

/// Largest element in [`LANES`] lanes (NEG_INFINITY when empty; NaN-blind).
#[inline(always)]
pub fn lane_max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let mut m = f32::NEG_INFINITY;
    for &v in chunks.remainder() {
        m = if v > m { v } else { m };
    }
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    acc.iter().fold(m, |m, &v| if v > m { v } else { m })
}

simd_dispatch! {
    /// Rows of `c` (width `b.len()`): v = gelu(v + b), tanh or exact.
    fn gelu_bias_rows(c: &mut [f32], b: &[f32], tanh: bool) {
        for row in c.chunks_mut(b.len()) {
            if tanh {
                for (v, b) in row.iter_mut().zip(b) {
                    *v = gelu_tanh(*v + b);
                }
            } else {
                for (v, b) in row.iter_mut().zip(b) {
                    *v = gelu_erf(*v + b);
                }
            }
        }
    }
}

/// GELU of every element of `xs` [n, d] plus its column's bias (`bias`: [d], or zeros when None), in
/// parallel: the tanh approximation (GPT-2's `gelu_new`) or the exact one. Adding the bias here spares
/// the GEMM before it a pass that fills its output with bias rows.
pub fn gelu_inplace(xs: &mut [f32], d: usize, bias: Option<&[f32]>, tanh: bool) {
    let zeros;
    let b = match bias {
        Some(b) => b,
        None => {
            zeros = vec![0.0; d];
            &zeros
        }
    };
    assert!(
        b.len() == d && xs.len().is_multiple_of(d.max(1)),
        "gelu: shapes"
    );
    let rows = (CHUNK / d.max(1)).max(1);
    xs.par_chunks_mut(rows * d)
        .for_each(|c| gelu_bias_rows(c, b, tanh));
}

simd_dispatch! {
    fn silu_gate_rows(o: &mut [f32], g: &[f32], m: usize) {
        for (orow, grow) in o.chunks_mut(m).zip(g.chunks(2 * m)) {
            let (gate, up) = grow.split_at(m);
            for ((o, &g), &u) in orow.iter_mut().zip(gate).zip(up) {
                *o = silu(g) * u;
            }
        }
    }
}

/// The gated MLP activation: row i of `gu` [n, 2 m] holds gate | up; out [n, m] = silu(gate) * up.
pub fn silu_gate(out: &mut [f32], gu: &[f32], m: usize) {
    assert_eq!(out.len() * 2, gu.len(), "silu_gate: output size");
    let rows = (CHUNK / m).max(1);
    out.par_chunks_mut(rows * m)
        .zip(gu.par_chunks(rows * 2 * m))
        .for_each(|(o, g)| silu_gate_rows(o, g, m));
}

/// dst += src, in parallel.
pub fn add_inplace(dst: &mut [f32], src: &[f32]) {
    dst.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(d, s)| {
            for (d, s) in d.iter_mut().zip(s) {
                *d += s;
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn erf64(x: f64) -> f64 {
        // Maclaurin series for |x| < 3; beyond, the asymptotic series of erfc (error < 1e-9 there).
        if x.abs() >= 3.0 {
            let a = x.abs();
            let z = 1.0 / (2.0 * a * a);
            let series = 1.0 - z + 3.0 * z * z - 15.0 * z * z * z + 105.0 * z.powi(4);
            let erfc = (-a * a).exp() / (a * std::f64::consts::PI.sqrt()) * series;
            return x.signum() * (1.0 - erfc);
        }
        let mut sum = 0.0;
        let mut term = x;
        for n in 0..200 {
            sum += term / (2 * n + 1) as f64;
            term *= -x * x / (n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn exp_erf_tanh_match_f64() {
        for i in -4000..=4000 {
            let x = i as f32 * 0.02;
            let e = (x as f64).exp();
            assert!(((exp(x) as f64 - e) / e).abs() < 5e-7, "exp {x}");
            assert!((erf(x) as f64 - erf64(x as f64)).abs() < 5e-7, "erf {x}");
            assert!(
                (tanh(x) as f64 - (x as f64).tanh()).abs() < 5e-7,
                "tanh {x}"
            );
            let s = x as f64 / (1.0 + (-x as f64).exp());
            assert!(
                (silu(x) as f64 - s).abs() < 1e-6 * s.abs().max(1.0),
                "silu {x}"
            );
        }
        assert_eq!(erf(0.0), 0.0);
        let xs: Vec<f32> = (0..37).map(|i| (i as f32 - 20.0) * 0.5).collect();
        assert_eq!(lane_sum(&xs), xs.iter().sum::<f32>());
        assert_eq!(
            lane_sum_map(&xs, |v| v * v),
            xs.iter().map(|v| v * v).sum::<f32>()
        );
        assert_eq!(lane_max(&xs), 8.0);
        // e^(x - 1) over 0, 1, ..., 36 (both the lanes and the tail), against f64.
        let mut ys: Vec<f32> = (0..37).map(|i| i as f32 * 0.1).collect();
        let total = exp_sum_inplace(&mut ys, 1.0);
        let want: f64 = (0..37).map(|i| (i as f64 * 0.1 - 1.0).exp()).sum();
        assert!((total as f64 - want).abs() < 1e-5 * want);
        assert!((ys[36] as f64 - 2.6f64.exp()).abs() < 1e-5);
        assert_eq!(lane_max(&[]), f32::NEG_INFINITY);
        assert!(exp(-1e30) < 1e-37 && exp(1e30).is_finite());
        // GELU by hand: gelu(1) = 0.5 (1 + erf(1/sqrt 2)) = 0.841344746.
        assert!((gelu_erf(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu_tanh(1.0) - 0.841_192).abs() < 1e-5);
        // The buffer pass adds the bias first: rows [0, 1] + [1, 0] -> gelu(1) twice.
        for tanh in [false, true] {
            let mut xs = vec![0.0, 1.0, 0.0, 1.0];
            gelu_inplace(&mut xs, 2, Some(&[1.0, 0.0]), tanh);
            let g = if tanh { gelu_tanh(1.0) } else { gelu_erf(1.0) };
            assert_eq!(xs, vec![g, g, g, g]);
        }
    }
}
