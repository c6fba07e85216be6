//! Geometric median of a sample of rows (Weiszfeld iterations), used to initialise b_dec.

/// Geometric median of `rows` ([n, d] row-major): the point minimising the sum of Euclidean distances.
/// Starts at the mean and runs `iters` Weiszfeld iterations; distances below 1e-8 are clamped so a
/// sample point that coincides with the estimate cannot divide by zero.
pub fn geometric_median(rows: &[f32], d: usize, iters: usize) -> Vec<f32> {
    let n = rows.len().checked_div(d).unwrap_or(0);
    let mut y = vec![0f64; d];
    if n == 0 {
        return vec![0.0; d];
    }
    for r in rows.chunks(d) {
        y.iter_mut().zip(r).for_each(|(a, b)| *a += *b as f64);
    }
    y.iter_mut().for_each(|a| *a /= n as f64);
    for _ in 0..iters {
        let mut num = vec![0f64; d];
        let mut den = 0f64;
        for r in rows.chunks(d) {
            let dist = r
                .iter()
                .zip(&y)
                .map(|(a, b)| (*a as f64 - b).powi(2))
                .sum::<f64>()
                .sqrt()
                .max(1e-8);
            let w = 1.0 / dist;
            den += w;
            num.iter_mut().zip(r).for_each(|(a, b)| *a += w * *b as f64);
        }
        y = num.into_iter().map(|a| a / den).collect();
    }
    y.into_iter().map(|v| v as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_collinear_points_is_the_middle_one() {
        // 1-D: the geometric median of {0, 1, 10} is 1 (the mean would be 11/3).
        let m = geometric_median(&[0.0, 1.0, 10.0], 1, 200);
        assert!((m[0] - 1.0).abs() < 1e-2, "{m:?}");
    }

    #[test]
    fn median_resists_an_outlier() {
        // Four corners of the unit square plus a far outlier at (100, 100). By symmetry the median is
        // (t, t); setting the derivative of the summed distances to 0 gives, with u = 2t - 1,
        // 2u = sqrt(u^2 + 1), so u = 1/sqrt(3) and t = (1 + 1/sqrt(3)) / 2 = 0.78868 (mean: 20.4).
        let pts = [0., 0., 1., 0., 0., 1., 1., 1., 100., 100.];
        let m = geometric_median(&pts, 2, 200);
        let t = (1.0 + 1.0 / 3f32.sqrt()) / 2.0;
        assert!((m[0] - t).abs() < 1e-3 && (m[1] - t).abs() < 1e-3, "{m:?}");
        // Symmetric square: exactly the centre.
        let sq = geometric_median(&pts[..8], 2, 10);
        assert!((sq[0] - 0.5).abs() < 1e-6 && (sq[1] - 0.5).abs() < 1e-6);
    }
}
