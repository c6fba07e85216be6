//! Streaming moments (count, mean, M2, M3, M4) with Pébay's exact merge: skewness and kurtosis
//! of a unit's activation distribution in one pass, numerically sound (no raw power sums).

use serde::{Deserialize, Serialize};

/// Central-moment accumulator of a stream of values.
///
/// `m2`, `m3`, `m4` are sums of the 2nd, 3rd and 4th powers of deviations from the mean.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    /// Number of values.
    pub n: u64,
    /// Running mean.
    pub mean: f64,
    /// Sum of squared deviations.
    pub m2: f64,
    /// Sum of cubed deviations.
    pub m3: f64,
    /// Sum of fourth-power deviations.
    pub m4: f64,
}

impl Moments {
    /// Reference path: adds one value (Welford / Pébay single-value update).
    pub fn push(&mut self, x: f64) {
        self.merge(&Moments {
            n: 1,
            mean: x,
            ..Moments::default()
        });
    }

    /// Adds `count` zeros (used by sparse accumulation: only nonzero values are pushed).
    pub fn push_zeros(&mut self, count: u64) {
        if count > 0 {
            self.merge(&Moments {
                n: count,
                ..Moments::default()
            });
        }
    }

    /// Merges another accumulator into this one (Pébay 2008, exact for any split of the data).
    pub fn merge(&mut self, b: &Moments) {
        if b.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *b;
            return;
        }
        let (na, nb) = (self.n as f64, b.n as f64);
        let n = na + nb;
        let delta = b.mean - self.mean;
        let d2 = delta * delta;
        let mean = self.mean + delta * nb / n;
        let m2 = self.m2 + b.m2 + d2 * na * nb / n;
        let m3 = self.m3
            + b.m3
            + d2 * delta * na * nb * (na - nb) / (n * n)
            + 3.0 * delta * (na * b.m2 - nb * self.m2) / n;
        let m4 = self.m4
            + b.m4
            + d2 * d2 * na * nb * (na * na - na * nb + nb * nb) / (n * n * n)
            + 6.0 * d2 * (na * na * b.m2 + nb * nb * self.m2) / (n * n)
            + 4.0 * delta * (na * b.m3 - nb * self.m3) / n;
        *self = Moments {
            n: self.n + b.n,
            mean,
            m2,
            m3,
            m4,
        };
    }

    /// Population variance (M2 / n); 0 for an empty stream.
    pub fn variance(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.m2 / self.n as f64
        }
    }

    /// Population skewness sqrt(n) M3 / M2^1.5; `None` when the values are all equal.
    pub fn skewness(&self) -> Option<f64> {
        (self.n > 0 && self.m2 > 0.0).then(|| (self.n as f64).sqrt() * self.m3 / self.m2.powf(1.5))
    }

    /// Kurtosis n M4 / M2^2 (not excess: a Gaussian gives 3); `None` when the values are all equal.
    pub fn kurtosis(&self) -> Option<f64> {
        (self.n > 0 && self.m2 > 0.0).then(|| self.n as f64 * self.m4 / (self.m2 * self.m2))
    }
}

/// Fast path: per-column moments of a row-major block, two passes over the block
/// (mean, then deviation powers), merged into `acc`.
///
/// x: [rows, cols] row-major; acc: [cols].
pub fn accumulate_block(x: &[f32], rows: usize, cols: usize, acc: &mut [Moments]) {
    debug_assert_eq!(x.len(), rows * cols);
    debug_assert_eq!(acc.len(), cols);
    if rows == 0 {
        return;
    }
    let mut sum = vec![0f64; cols];
    for row in x.chunks_exact(cols) {
        for (s, &v) in sum.iter_mut().zip(row) {
            *s += v as f64;
        }
    }
    let inv = 1.0 / rows as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s * inv).collect();
    let (mut m2, mut m3, mut m4) = (vec![0f64; cols], vec![0f64; cols], vec![0f64; cols]);
    for row in x.chunks_exact(cols) {
        for c in 0..cols {
            let d = row[c] as f64 - mean[c];
            let dd = d * d;
            m2[c] += dd;
            m3[c] += dd * d;
            m4[c] += dd * dd;
        }
    }
    for c in 0..cols {
        acc[c].merge(&Moments {
            n: rows as u64,
            mean: mean[c],
            m2: m2[c],
            m3: m3[c],
            m4: m4[c],
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn hand_values() {
        // Values 0, 0, 0, 4: mean 1, deviations -1,-1,-1,3.
        // M2 = 1+1+1+9 = 12, M3 = -1-1-1+27 = 24, M4 = 1+1+1+81 = 84.
        // skew = sqrt(4)*24/12^1.5 = 48/41.569 = 1.1547; kurt = 4*84/144 = 2.3333.
        let mut m = Moments::default();
        for x in [0.0, 0.0, 0.0, 4.0] {
            m.push(x);
        }
        assert_eq!(m.n, 4);
        assert!(close(m.mean, 1.0, 1e-12));
        assert!(close(m.m2, 12.0, 1e-12));
        assert!(close(m.m3, 24.0, 1e-12));
        assert!(close(m.m4, 84.0, 1e-12));
        assert!(close(m.skewness().unwrap(), 2.0 / 3f64.sqrt(), 1e-12));
        assert!(close(m.kurtosis().unwrap(), 7.0 / 3.0, 1e-12));
        assert!(close(m.variance(), 3.0, 1e-12));
    }

    #[test]
    fn symmetric_values_have_zero_skew() {
        // -1, 1: mean 0, M2 = 2, M4 = 2, kurtosis = 2*2/4 = 1.
        let mut m = Moments::default();
        m.push(-1.0);
        m.push(1.0);
        assert!(m.skewness().unwrap().abs() < 1e-12);
        assert!(close(m.kurtosis().unwrap(), 1.0, 1e-12));
    }

    #[test]
    fn constant_stream_has_no_shape() {
        let mut m = Moments::default();
        for _ in 0..5 {
            m.push(2.5);
        }
        assert_eq!(m.skewness(), None);
        assert_eq!(m.kurtosis(), None);
    }

    #[test]
    fn push_zeros_equals_pushing_zeros() {
        let mut a = Moments::default();
        let mut b = Moments::default();
        for x in [3.0, 0.5, 7.0] {
            a.push(x);
            b.push(x);
        }
        a.push_zeros(97);
        for _ in 0..97 {
            b.push(0.0);
        }
        assert!(close(a.mean, b.mean, 1e-12));
        assert!(close(a.m2, b.m2, 1e-10));
        assert!(close(a.m3, b.m3, 1e-10));
        assert!(close(a.m4, b.m4, 1e-10));
    }

    #[test]
    fn block_path_agrees_with_reference_and_survives_large_offset() {
        // A large common offset ruins raw power sums; central moments must still match.
        let rows = 257;
        let cols = 3;
        let mut x = Vec::new();
        let mut state = 12345u64;
        for _ in 0..rows {
            for c in 0..cols {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                x.push((1e4 * c as f64 + u * u * u) as f32);
            }
        }
        let mut reference = vec![Moments::default(); cols];
        for row in x.chunks_exact(cols) {
            for c in 0..cols {
                reference[c].push(row[c] as f64);
            }
        }
        let mut fast = vec![Moments::default(); cols];
        // Uneven blocks exercise the merge.
        accumulate_block(&x[..100 * cols], 100, cols, &mut fast);
        accumulate_block(&x[100 * cols..], rows - 100, cols, &mut fast);
        for c in 0..cols {
            assert_eq!(fast[c].n, reference[c].n);
            assert!(close(fast[c].mean, reference[c].mean, 1e-12));
            assert!(close(
                fast[c].kurtosis().unwrap(),
                reference[c].kurtosis().unwrap(),
                1e-6
            ));
            assert!(close(
                fast[c].skewness().unwrap(),
                reference[c].skewness().unwrap(),
                1e-6
            ));
        }
    }
}
