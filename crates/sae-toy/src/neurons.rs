//! Polysemanticity of units (the hidden-ReLU model's neurons, or SAE latents): how many features
//! drive each unit, and the kurtosis of its activation over sampled inputs.

use serde::{Deserialize, Serialize};

/// A feature drives a unit when the unit's response to that feature alone (at magnitude 1)
/// exceeds this fraction of the unit's largest such response.
pub const DRIVE_FRAC: f64 = 0.5;

/// Features driving each unit. `response` [units, n]: unit u's activation when only feature i is
/// on at magnitude 1 (for a hidden-ReLU neuron j: ReLU(W_ji)). A unit that no feature drives
/// above 0 counts 0.
pub fn features_per_unit(response: &[f32], n: usize) -> Vec<usize> {
    response
        .chunks_exact(n)
        .map(|r| {
            let top = r.iter().fold(0f32, |a, v| a.max(*v)) as f64;
            if top <= 0.0 {
                return 0;
            }
            r.iter().filter(|v| **v as f64 > DRIVE_FRAC * top).count()
        })
        .collect()
}

/// Pearson kurtosis E[(a - mean)^4] / Var(a)^2 of samples (3 for a Gaussian); `None` when the
/// variance is 0.
pub fn kurtosis(samples: &[f32]) -> Option<f64> {
    let n = samples.len() as f64;
    if samples.is_empty() {
        return None;
    }
    let mean = samples.iter().map(|v| *v as f64).sum::<f64>() / n;
    let (mut m2, mut m4) = (0f64, 0f64);
    for v in samples {
        let d = *v as f64 - mean;
        m2 += d * d;
        m4 += d.powi(4);
    }
    let (m2, m4) = (m2 / n, m4 / n);
    if m2 <= 1e-30 {
        return None;
    }
    Some(m4 / (m2 * m2))
}

/// Pearson correlation of paired values; `None` with fewer than 3 pairs or no variance.
pub fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len().min(b.len());
    if n < 3 {
        return None;
    }
    let ma = a[..n].iter().sum::<f64>() / n as f64;
    let mb = b[..n].iter().sum::<f64>() / n as f64;
    let (mut sab, mut saa, mut sbb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b).take(n) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma).powi(2);
        sbb += (y - mb).powi(2);
    }
    if saa <= 0.0 || sbb <= 0.0 {
        return None;
    }
    Some(sab / (saa * sbb).sqrt())
}

/// Ranks with ties at their mean rank (1-based).
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut out = vec![0f64; v.len()];
    let mut s = 0;
    while s < idx.len() {
        let mut e = s;
        while e + 1 < idx.len() && v[idx[e + 1]] == v[idx[s]] {
            e += 1;
        }
        let r = (s + e) as f64 / 2.0 + 1.0;
        idx[s..=e].iter().for_each(|&i| out[i] = r);
        s = e + 1;
    }
    out
}

/// Spearman rank correlation (Pearson of mean ranks).
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    pearson(&ranks(a), &ranks(b))
}

/// One unit's polysemanticity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnitStats {
    /// Features whose lone response exceeds [`DRIVE_FRAC`] of the unit's largest.
    pub features: usize,
    /// Kurtosis of the unit's activation over the sampled inputs (`None`: constant).
    pub kurtosis: Option<f64>,
}

/// Count of features per unit against kurtosis, over the units with a kurtosis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CountKurtosis {
    /// Units that entered (driven by at least one feature, non-constant activation).
    pub units: usize,
    /// Pearson correlation of feature count and kurtosis.
    pub pearson: Option<f64>,
    /// Spearman rank correlation of feature count and kurtosis.
    pub spearman: Option<f64>,
}

/// Correlates feature counts with kurtosis over `units`.
pub fn count_kurtosis(units: &[UnitStats]) -> CountKurtosis {
    let (mut c, mut k) = (Vec::new(), Vec::new());
    for u in units.iter().filter(|u| u.features > 0) {
        if let Some(v) = u.kurtosis {
            c.push(u.features as f64);
            k.push(v);
        }
    }
    CountKurtosis {
        units: c.len(),
        pearson: pearson(&c, &k),
        spearman: spearman(&c, &k),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_features_above_half_the_largest() {
        // Unit 0: 1.0, 0.6, 0.4, -2 -> 2; unit 1: all <= 0 -> 0; unit 2: equal weights -> 4.
        let r = [
            1.0, 0.6, 0.4, -2.0, -1.0, 0.0, -0.5, 0.0, 0.3, 0.3, 0.3, 0.3,
        ];
        assert_eq!(features_per_unit(&r, 4), vec![2, 0, 4]);
    }

    #[test]
    fn kurtosis_by_hand() {
        // -1, 1: m2 = 1, m4 = 1 -> 1.
        assert!((kurtosis(&[-1.0, 1.0]).unwrap() - 1.0).abs() < 1e-12);
        // 0, 0, 0, 4: mean 1; deviations -1 x3, 3: m2 = 12/4 = 3, m4 = (3 + 81)/4 = 21 -> 21/9.
        assert!((kurtosis(&[0.0, 0.0, 0.0, 4.0]).unwrap() - 21.0 / 9.0).abs() < 1e-12);
        assert_eq!(kurtosis(&[2.0, 2.0]), None);
    }

    #[test]
    fn correlations_by_hand() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!((pearson(&a, &[2.0, 4.0, 6.0, 8.0]).unwrap() - 1.0).abs() < 1e-12);
        assert!((pearson(&a, &[4.0, 3.0, 2.0, 1.0]).unwrap() + 1.0).abs() < 1e-12);
        // Monotone but not linear: Spearman 1, Pearson below 1.
        let b = [1.0, 10.0, 100.0, 1000.0];
        assert!((spearman(&a, &b).unwrap() - 1.0).abs() < 1e-12);
        assert!(pearson(&a, &b).unwrap() < 0.95);
        // Ties: ranks of [1, 1, 2] are [1.5, 1.5, 3]; with [1, 2, 3]: r = 0.8660254.
        let s = spearman(&[1.0, 1.0, 2.0], &[1.0, 2.0, 3.0]).unwrap();
        assert!((s - 0.75f64.sqrt()).abs() < 1e-9, "{s}");
        assert_eq!(pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
    }
}
