//! Row norms as single fused passes over [n, d] buffers, parallel over rows: LayerNorm (optionally of a
//! residual sum, written in place) and RMSNorm.

use rayon::prelude::*;

use sae_simd::simd_dispatch;

use super::math::{lane_sum, lane_sum_map};

/// Rows per parallel task.
fn rows_per_task(d: usize) -> usize {
    (8192 / d.max(1)).max(1)
}

#[inline(always)]
fn layer_norm_row(row: &mut [f32], w: &[f32], b: Option<&[f32]>, eps: f32) {
    let d = row.len() as f32;
    let mean = lane_sum(row) / d;
    let var = lane_sum_map(row, |v| (v - mean) * (v - mean)) / d;
    let inv = 1.0 / (var + eps).sqrt();
    match b {
        Some(b) => {
            for ((v, w), b) in row.iter_mut().zip(w).zip(b) {
                *v = (*v - mean) * inv * w + b;
            }
        }
        None => {
            for (v, w) in row.iter_mut().zip(w) {
                *v = (*v - mean) * inv * w;
            }
        }
    }
}

simd_dispatch! {
    fn ln_add_rows(xc: &mut [f32], ac: &[f32], w: &[f32], b: Option<&[f32]>, eps: f32) {
        let d = w.len();
        for (row, a) in xc.chunks_mut(d).zip(ac.chunks(d)) {
            for (v, a) in row.iter_mut().zip(a) {
                *v += a;
            }
            layer_norm_row(row, w, b, eps);
        }
    }
}

simd_dispatch! {
    fn ln_rows(xc: &mut [f32], w: &[f32], b: Option<&[f32]>, eps: f32) {
        for row in xc.chunks_mut(w.len()) {
            layer_norm_row(row, w, b, eps);
        }
    }
}

simd_dispatch! {
    fn rms_rows(yc: &mut [f32], xc: &[f32], w: &[f32], eps: f32) {
        let d = w.len();
        for (yr, xr) in yc.chunks_mut(d).zip(xc.chunks(d)) {
            let ms = lane_sum_map(xr, |v| v * v) / d as f32;
            let inv = 1.0 / (ms + eps).sqrt();
            for ((y, x), w) in yr.iter_mut().zip(xr).zip(w) {
                *y = x * inv * w;
            }
        }
    }
}

/// x = LayerNorm(x + add) row by row (`add`: None for a plain LayerNorm). x, add: [n, d].
pub fn layer_norm_inplace(
    x: &mut [f32],
    add: Option<&[f32]>,
    w: &[f32],
    b: Option<&[f32]>,
    eps: f32,
) {
    let d = w.len();
    let step = rows_per_task(d) * d;
    match add {
        Some(add) => x
            .par_chunks_mut(step)
            .zip(add.par_chunks(step))
            .for_each(|(xc, ac)| ln_add_rows(xc, ac, w, b, eps)),
        None => x.par_chunks_mut(step).for_each(|xc| ln_rows(xc, w, b, eps)),
    }
}

/// y = LayerNorm(x) (y's old contents do not matter).
pub fn layer_norm(y: &mut [f32], x: &[f32], w: &[f32], b: Option<&[f32]>, eps: f32) {
    y.copy_from_slice(x);
    layer_norm_inplace(y, None, w, b, eps);
}

/// y = x / sqrt(mean(x^2) + eps) * w row by row (y's old contents do not matter).
pub fn rms_norm(y: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    let d = w.len();
    assert_eq!(y.len(), x.len(), "rms_norm: output size");
    let step = rows_per_task(d) * d;
    y.par_chunks_mut(step)
        .zip(x.par_chunks(step))
        .for_each(|(yc, xc)| rms_rows(yc, xc, w, eps));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norms_match_hand_values() {
        // Row [1, 2, 3, 6]: mean 3, var (4 + 1 + 0 + 9) / 4 = 3.5.
        let w = [1.0, 2.0, 1.0, 1.0];
        let b = [0.0, 0.0, 1.0, 0.0];
        let mut y = [0.0; 4];
        layer_norm(&mut y, &[1.0, 2.0, 3.0, 6.0], &w, Some(&b), 0.0);
        let s = 3.5f32.sqrt();
        let want = [-2.0 / s, -2.0 / s, 1.0, 3.0 / s];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{y:?}");
        }
        // Residual form: LN([0, 1, 2, 5] + [1, 1, 1, 1]) is the same row.
        let mut x = vec![0.0, 1.0, 2.0, 5.0];
        layer_norm_inplace(&mut x, Some(&[1.0; 4]), &w, Some(&b), 0.0);
        assert_eq!(x, y);
        // RMS of [3, 4] is sqrt(12.5).
        let mut r = [0.0; 2];
        rms_norm(&mut r, &[3.0, 4.0], &[1.0, 2.0], 0.0);
        let m = 12.5f32.sqrt();
        assert!((r[0] - 3.0 / m).abs() < 1e-6 && (r[1] - 8.0 / m).abs() < 1e-6);
    }
}
