//! Quantile-wise precision: how often a unit's explanation holds at each strength of activation.
//!
//! A uniform sample (reservoir) of the unit's held-out active rows keeps (activation, token,
//! previous token); once the explanation is known, the sample is cut by activation into the top
//! decile, the middle (10-90%) and the bottom decile of the unit's active rows, and each band's
//! precision is the fraction of its rows on which the explanation holds, P(H | active in the
//! band): the quantile-wise precision of Anthropic's and OpenAI's evaluations (of the unit's
//! activations in a band, how many the explanation accounts for; the unit's firing read as the
//! prediction). In the F1 terms of [`crate::explain`] this is the recall restricted to the band.
//! An explanation that only describes the top activations scores high in the top band and low in
//! the others.

use serde::{Deserialize, Serialize};

use crate::explain::Hypothesis;

/// The bands: (name, lower quantile, upper quantile) of a unit's active values.
pub const BANDS: [(&str, f64, f64); 3] = [
    ("top 10%", 0.9, 1.0),
    ("middle 10-90%", 0.1, 0.9),
    ("bottom 10%", 0.0, 0.1),
];

/// A uniform sample of held-out active rows: (activation, token, previous token).
#[derive(Clone, Debug, Default)]
pub struct BandSample {
    items: Vec<(f32, u32, Option<u32>)>,
    seen: u64,
}

impl BandSample {
    /// Offers one active row; `draw` is a fresh uniform 64-bit random number (algorithm R).
    pub fn offer(&mut self, act: f32, tok: u32, prev: Option<u32>, cap: usize, draw: u64) {
        self.seen += 1;
        if self.items.len() < cap {
            self.items.push((act, tok, prev));
        } else {
            let j = draw % self.seen;
            if (j as usize) < cap {
                self.items[j as usize] = (act, tok, prev);
            }
        }
    }

    /// Precision of `h` in each of [`BANDS`], strongest band first (bands with no sampled row
    /// are left out).
    pub fn precision(&self, h: &Hypothesis) -> Vec<BandPrecision> {
        let mut v = self.items.clone();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        let n = v.len();
        BANDS
            .iter()
            .filter_map(|&(name, lo, hi)| {
                let (a, b) = (band_index(lo, n), band_index(hi, n));
                let rows = &v[a..b];
                let hits = rows.iter().filter(|r| h.holds(r.1, r.2)).count();
                (!rows.is_empty()).then(|| BandPrecision {
                    band: name.into(),
                    q_lo: lo,
                    q_hi: hi,
                    rows: rows.len(),
                    hits,
                    precision: hits as f64 / rows.len() as f64,
                })
            })
            .collect()
    }
}

/// The sorted-sample index where quantile `q` starts (the top decile of 200 rows is rows 180..200).
fn band_index(q: f64, n: usize) -> usize {
    ((q * n as f64).round() as usize).min(n)
}

/// The explanation's precision within one activation band of a unit's held-out active rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BandPrecision {
    /// Name of the band.
    pub band: String,
    /// Lower quantile of the unit's active values.
    pub q_lo: f64,
    /// Upper quantile.
    pub q_hi: f64,
    /// Sampled held-out active rows in the band.
    pub rows: usize,
    /// Of those, rows where the explanation holds.
    pub hits: usize,
    /// hits / rows.
    pub precision: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_by_hand() {
        // 20 rows with activations 1..=20: top decile = 19, 20; bottom = 1, 2; middle = 3..=18.
        // The explanation (token 7) holds at 20 and 19 (top 2/2), at 3 of the 16 middle rows, and
        // at neither bottom row.
        let mut s = BandSample::default();
        for a in 1..=20u32 {
            let tok = if a >= 19 || [5, 9, 12].contains(&a) {
                7
            } else {
                1
            };
            s.offer(a as f32, tok, None, 100, 0);
        }
        let b = s.precision(&Hypothesis::Token { token: 7 });
        let got: Vec<(usize, usize)> = b.iter().map(|b| (b.rows, b.hits)).collect();
        assert_eq!(got, vec![(2, 2), (16, 3), (2, 0)]);
        assert_eq!(b[0].band, "top 10%");
        assert!((b[1].precision - 3.0 / 16.0).abs() < 1e-12);
    }

    #[test]
    fn reservoir_is_bounded_and_uniform() {
        let mut s = BandSample::default();
        let mut state = 1u64;
        for a in 0..10_000u32 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s.offer(a as f32, 0, None, 200, state >> 11);
        }
        assert_eq!(s.items.len(), 200);
        let mean = s.items.iter().map(|r| r.0 as f64).sum::<f64>() / 200.0;
        assert!((mean - 5000.0).abs() < 700.0, "sample mean {mean}");
    }
}
