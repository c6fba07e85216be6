//! Bootstrap intervals over units: the 95% percentile interval of a group's median score, and of
//! the difference between two groups' medians (each group resampled on its own), seeded so a
//! report is reproducible.

use serde::{Deserialize, Serialize};

/// Bootstrap resamples per interval.
pub const RESAMPLES: usize = 1000;

/// A two-sided interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower end (2.5th percentile of the bootstrap distribution).
    pub lo: f64,
    /// Upper end (97.5th percentile).
    pub hi: f64,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0), by the multiply-shift method.
    fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * n as u64) >> 32) as usize
    }
}

/// Median of `v` (reordered in place): the mean of the two middle values for an even count.
pub fn median_in_place(v: &mut [f64]) -> f64 {
    let n = v.len();
    let (lo, &mut hi, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n % 2 == 1 {
        hi
    } else {
        let below = lo.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (below + hi) / 2.0
    }
}

fn resampled_median(x: &[f64], rng: &mut Rng, buf: &mut Vec<f64>) -> f64 {
    buf.clear();
    buf.extend((0..x.len()).map(|_| x[rng.below(x.len())]));
    median_in_place(buf)
}

fn percentile_interval(mut stats: Vec<f64>) -> Interval {
    stats.sort_by(f64::total_cmp);
    let q = |p: f64| crate::summary::quantile(&stats, p).unwrap_or(f64::NAN);
    Interval {
        lo: q(0.025),
        hi: q(0.975),
    }
}

/// The 95% bootstrap interval of the median of `x`; `None` for fewer than 2 values.
pub fn median_interval(x: &[f64], seed: u64) -> Option<Interval> {
    if x.len() < 2 {
        return None;
    }
    let mut rng = Rng(seed ^ 0xB007_5712);
    let mut buf = Vec::with_capacity(x.len());
    let stats = (0..RESAMPLES)
        .map(|_| resampled_median(x, &mut rng, &mut buf))
        .collect();
    Some(percentile_interval(stats))
}

/// The 95% bootstrap interval of median(a) - median(b), each resampled independently; `None`
/// when either has fewer than 2 values.
pub fn difference_interval(a: &[f64], b: &[f64], seed: u64) -> Option<Interval> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let mut rng = Rng(seed ^ 0xD1FF_0001);
    let mut buf = Vec::with_capacity(a.len().max(b.len()));
    let stats = (0..RESAMPLES)
        .map(|_| {
            let ma = resampled_median(a, &mut rng, &mut buf);
            ma - resampled_median(b, &mut rng, &mut buf)
        })
        .collect();
    Some(percentile_interval(stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_by_hand() {
        assert_eq!(median_in_place(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_in_place(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn constant_data_has_a_point_interval_and_seeds_repeat() {
        let x = vec![0.7; 50];
        assert_eq!(median_interval(&x, 0), Some(Interval { lo: 0.7, hi: 0.7 }));
        assert_eq!(median_interval(&[1.0], 0), None);
        let y: Vec<f64> = (0..101).map(|i| i as f64 / 100.0).collect();
        assert_eq!(median_interval(&y, 5), median_interval(&y, 5));
    }

    /// Against the normal approximation of the median's sampling distribution: for n uniform
    /// values on [0, 1) the median has standard deviation 1 / (2 sqrt(n)), so the 95% interval of
    /// 400 evenly spread values is about 0.5 +- 1.96 x 0.025 = [0.451, 0.549].
    #[test]
    fn interval_width_matches_theory() {
        let y: Vec<f64> = (0..400).map(|i| (i as f64 + 0.5) / 400.0).collect();
        let ci = median_interval(&y, 1).unwrap();
        assert!((ci.lo - 0.451).abs() < 0.015, "{ci:?}");
        assert!((ci.hi - 0.549).abs() < 0.015, "{ci:?}");
        // Two such groups shifted by 0.3: the difference's interval is centred on 0.3 and
        // sqrt(2) times as wide (+- 0.069).
        let z: Vec<f64> = y.iter().map(|v| v + 0.3).collect();
        let d = difference_interval(&z, &y, 2).unwrap();
        assert!(
            (d.lo - 0.231).abs() < 0.02 && (d.hi - 0.369).abs() < 0.02,
            "{d:?}"
        );
    }
}
