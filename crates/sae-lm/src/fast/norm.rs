//! Row norms as single fused passes over [n, d] buffers, parallel over rows: LayerNorm (optionally of a
//! residual sum, written in place) and RMSNorm.

use rayon::prelude::*;

use super::math::{simd, sum8, sum8_map};

/// Rows per parallel task.
fn rows_per_task(d: usize) -> usize {
    (8192 / d.max(1)).max(1)
}

#[inline(always)]
fn layer_norm_row(row: &mut [f32], w: &[f32], b: Option<&[f32]>, eps: f32) {
    let d = row.len() as f32;
    let mean = sum8(row) / d;
    let var = sum8_map(row, |v| (v - mean) * (v - mean)) / d;
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
            .for_each(|(xc, ac)| {
                simd(|| {
                    for (row, a) in xc.chunks_mut(d).zip(ac.chunks(d)) {
                        for (v, a) in row.iter_mut().zip(a) {
                            *v += a;
                        }
                        layer_norm_row(row, w, b, eps);
                    }
                })
            }),
        None => x.par_chunks_mut(step).for_each(|xc| {
            simd(|| {
                for row in xc.chunks_mut(d) {
                    layer_norm_row(row, w, b, eps);
                }
            })
        }),
    }
}

/// LayerNorm(x) into a new buffer.
pub fn layer_norm(x: &[f32], w: &[f32], b: Option<&[f32]>, eps: f32) -> Vec<f32> {
    let mut y = x.to_vec();
    layer_norm_inplace(&mut y, None, w, b, eps);
    y
}

/// x / sqrt(mean(x^2) + eps) * w row by row, into a new buffer.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let d = w.len();
    let mut y = vec![0.0; x.len()];
    let step = rows_per_task(d) * d;
    y.par_chunks_mut(step)
        .zip(x.par_chunks(step))
        .for_each(|(yc, xc)| {
            simd(|| {
                for (yr, xr) in yc.chunks_mut(d).zip(xc.chunks(d)) {
                    let ms = sum8_map(xr, |v| v * v) / d as f32;
                    let inv = 1.0 / (ms + eps).sqrt();
                    for ((y, x), w) in yr.iter_mut().zip(xr).zip(w) {
                        *y = x * inv * w;
                    }
                }
            })
        });
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norms_match_hand_values() {
        // Row [1, 2, 3, 6]: mean 3, var (4 + 1 + 0 + 9) / 4 = 3.5.
        let w = [1.0, 2.0, 1.0, 1.0];
        let b = [0.0, 0.0, 1.0, 0.0];
        let y = layer_norm(&[1.0, 2.0, 3.0, 6.0], &w, Some(&b), 0.0);
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
        let r = rms_norm(&[3.0, 4.0], &[1.0, 2.0], 0.0);
        let m = 12.5f32.sqrt();
        assert!((r[0] - 3.0 / m).abs() < 1e-6 && (r[1] - 8.0 / m).abs() < 1e-6);
    }
}
