//! Histograms: a unit's active values on log2 bins (bounded, no range needed in advance) and the
//! dictionary's log10 firing-density histogram.

use serde::{Deserialize, Serialize};

/// Half-octave bins per power of two.
const PER_OCTAVE: f64 = 2.0;
/// Bin 0 starts at 2^MIN_EXP; values below fall in bin 0, above in the last bin.
const MIN_EXP: f64 = -20.0;
/// Number of bins: 2^-20 .. 2^20.
const BINS: usize = 80;

/// One histogram bin `[lo, hi)` with its count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    /// Lower edge.
    pub lo: f64,
    /// Upper edge.
    pub hi: f64,
    /// Values in the bin.
    pub count: u64,
}

/// Counts of positive values on half-octave bins over [2^-20, 2^20] (out-of-range values clamp).
#[derive(Clone, Debug)]
pub struct LogHistogram {
    counts: Vec<u32>,
}

impl Default for LogHistogram {
    fn default() -> Self {
        LogHistogram {
            counts: vec![0; BINS],
        }
    }
}

impl LogHistogram {
    /// Adds a value; values <= 0 are ignored (only active values are histogrammed).
    pub fn add(&mut self, x: f32) {
        if x > 0.0 {
            let b = ((x as f64).log2() - MIN_EXP) * PER_OCTAVE;
            let i = (b.floor().max(0.0) as usize).min(BINS - 1);
            self.counts[i] = self.counts[i].saturating_add(1);
        }
    }

    /// The bins from the first to the last non-empty one.
    pub fn bins(&self) -> Vec<Bin> {
        let first = self.counts.iter().position(|&c| c > 0);
        let last = self.counts.iter().rposition(|&c| c > 0);
        let (Some(a), Some(b)) = (first, last) else {
            return Vec::new();
        };
        (a..=b)
            .map(|i| Bin {
                lo: 2f64.powf(MIN_EXP + i as f64 / PER_OCTAVE),
                hi: 2f64.powf(MIN_EXP + (i + 1) as f64 / PER_OCTAVE),
                count: self.counts[i] as u64,
            })
            .collect()
    }
}

/// Histogram of log10(firing density) over a dictionary; units that never fired are counted apart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DensityHistogram {
    /// Bins of log10 density, width 0.25, from the lowest populated bin up to 0.
    pub bins: Vec<Bin>,
    /// Units with density 0 (log10 undefined).
    pub dead: u64,
}

/// Builds the log10-density histogram of `densities` (each in [0, 1]).
pub fn density_histogram(densities: &[f64]) -> DensityHistogram {
    const WIDTH: f64 = 0.25;
    let logs: Vec<f64> = densities
        .iter()
        .filter(|&&d| d > 0.0)
        .map(|d| d.log10())
        .collect();
    let dead = (densities.len() - logs.len()) as u64;
    let Some(min) = logs.iter().copied().reduce(f64::min) else {
        return DensityHistogram {
            bins: Vec::new(),
            dead,
        };
    };
    let lo_bin = (min / WIDTH).floor() as i64;
    let n = (-lo_bin).max(1) as usize;
    let mut counts = vec![0u64; n];
    for l in logs {
        let i = ((l / WIDTH).floor() as i64 - lo_bin).clamp(0, n as i64 - 1) as usize;
        counts[i] += 1;
    }
    let bins = counts
        .into_iter()
        .enumerate()
        .map(|(i, count)| Bin {
            lo: (lo_bin + i as i64) as f64 * WIDTH,
            hi: (lo_bin + i as i64 + 1) as f64 * WIDTH,
            count,
        })
        .collect();
    DensityHistogram { bins, dead }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_bins_by_hand() {
        let mut h = LogHistogram::default();
        h.add(1.0); // log2 = 0 -> bin (0 + 20) * 2 = 40: [1, 2^0.5)
        h.add(1.2); // same bin
        h.add(2.0); // log2 = 1 -> bin 42: [2, 2^1.5)
        h.add(0.0); // ignored
        let b = h.bins();
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].count, 2);
        assert!((b[0].lo - 1.0).abs() < 1e-12 && (b[0].hi - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(b[1].count, 0);
        assert_eq!(b[2].count, 1);
        assert!((b[2].lo - 2.0).abs() < 1e-12);
    }

    #[test]
    fn density_histogram_by_hand() {
        // log10: -1 (bin [-1, -0.75)), -2 ([-2, -1.75)), -0.1 ([-0.25, 0)), dead.
        let h = density_histogram(&[0.1, 0.01, 10f64.powf(-0.1), 0.0]);
        assert_eq!(h.dead, 1);
        assert_eq!(h.bins.len(), 8);
        assert_eq!(h.bins[0].lo, -2.0);
        assert_eq!(h.bins[0].count, 1);
        assert_eq!(h.bins[4].lo, -1.0);
        assert_eq!(h.bins[4].count, 1);
        assert_eq!(h.bins[7].count, 1);
        assert_eq!(h.bins.iter().map(|b| b.count).sum::<u64>(), 3);
    }
}
