//! Comparison of unit groups (latents vs neurons vs basis directions): score distributions,
//! monosemantic counts, and how score relates to kurtosis and sparsity.

use serde::{Deserialize, Serialize};

use crate::analyzer::UnitStats;
use crate::bands::BANDS;
use crate::bootstrap::{median_interval, Interval};

/// Summary of one group's scores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupSummary {
    /// Units in the group.
    pub units: usize,
    /// Units active at least once.
    pub alive: usize,
    /// Units never active.
    pub dead: usize,
    /// Units active on more than 10% of rows.
    pub dense: usize,
    /// Units active on at least `min_active` rows in each half (fit and held-out): the ones
    /// scored below.
    pub scored: usize,
    /// Units active, but on fewer than `min_active` rows of one half: too rare to score.
    pub unscored: usize,
    /// The least number of active rows in each half for a unit to be scored.
    pub min_active: u64,
    /// F1 quantiles (0.1, 0.25, 0.5, 0.75, 0.9) over scored units.
    pub f1_quantiles: Vec<(f64, f64)>,
    /// Median held-out F1 over scored units.
    pub median_f1: Option<f64>,
    /// 95% bootstrap interval of that median (units resampled).
    pub median_f1_ci: Option<Interval>,
    /// Median in-sample F1 (the explanation scored on the fit half that chose it), same units.
    pub in_sample_median_f1: Option<f64>,
    /// Scored units whose in-sample F1 >= `mono_threshold`.
    pub in_sample_monosemantic: usize,
    /// Median over scored units of the explanation's held-out precision in each activation band.
    pub median_band_precision: Vec<(String, f64)>,
    /// Mean F1 over scored units.
    pub mean_f1: Option<f64>,
    /// Scored units with F1 >= `mono_threshold`.
    pub monosemantic: usize,
    /// monosemantic / scored.
    pub monosemantic_frac: Option<f64>,
    /// The F1 threshold used.
    pub mono_threshold: f64,
    /// Median kurtosis over scored units.
    pub median_kurtosis: Option<f64>,
    /// Median firing density over scored units.
    pub median_density: Option<f64>,
    /// Spearman rank correlation of kurtosis with F1 (scored units).
    pub spearman_kurtosis_f1: Option<f64>,
    /// Spearman rank correlation of log density with F1 (scored units).
    pub spearman_density_f1: Option<f64>,
}

/// Quantile `q` of sorted values by linear interpolation between order statistics.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}

/// Average ranks (1-based; ties share their mean rank).
fn ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

/// Spearman rank correlation (Pearson correlation of average ranks); `None` if undefined.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 3 {
        return None;
    }
    let (rx, ry) = (ranks(x), ranks(y));
    let n = x.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Whether a unit is scored: active on at least `min_active` rows of each half (precision and
/// recall of a handful of activations say nothing, and a unit must fire on the fit half to be
/// explained and on the held-out half to be scored).
pub fn is_scored(u: &UnitStats, min_active: u64) -> bool {
    u.active > 0 && u.active_fit >= min_active.max(1) && u.active_heldout >= min_active.max(1)
}

/// Held-out F1 of every scored unit, by id.
pub fn scored_f1(units: &[UnitStats], min_active: u64) -> Vec<f64> {
    units
        .iter()
        .filter(|u| is_scored(u, min_active))
        .map(|u| u.explanation.as_ref().map_or(0.0, |e| e.f1))
        .collect()
}

fn band_medians(alive: &[&UnitStats]) -> Vec<(String, f64)> {
    BANDS
        .iter()
        .filter_map(|(name, _, _)| {
            let v: Vec<f64> = alive
                .iter()
                .filter_map(|u| u.bands.iter().find(|b| b.band == *name))
                .map(|b| b.precision)
                .collect();
            quantile(&sorted(v), 0.5).map(|m| (name.to_string(), m))
        })
        .collect()
}

/// Summarises a group's unit statistics over its scored units (see [`is_scored`]); `seed` seeds
/// the bootstrap.
pub fn summarize(
    units: &[UnitStats],
    mono_threshold: f64,
    min_active: u64,
    seed: u64,
) -> GroupSummary {
    let alive: Vec<&UnitStats> = units.iter().filter(|u| is_scored(u, min_active)).collect();
    let n_alive = units.iter().filter(|u| u.active > 0).count();
    let f1 = |u: &UnitStats| u.explanation.as_ref().map_or(0.0, |e| e.f1);
    let in_sample: Vec<f64> = alive
        .iter()
        .map(|u| u.in_sample.as_ref().map_or(0.0, |e| e.f1))
        .collect();
    let raw: Vec<f64> = alive.iter().map(|u| f1(u)).collect();
    let median_f1_ci = median_interval(&raw, seed);
    let scores = sorted(raw);
    let qs = [0.1, 0.25, 0.5, 0.75, 0.9];
    let monosemantic = scores.iter().filter(|&&s| s >= mono_threshold).count();
    let with_kurt: Vec<(f64, f64)> = alive
        .iter()
        .filter_map(|u| u.kurtosis.map(|k| (k, f1(u))))
        .collect();
    let (kx, ky): (Vec<f64>, Vec<f64>) = with_kurt.iter().copied().unzip();
    let dens: Vec<f64> = alive.iter().map(|u| u.density.log10()).collect();
    GroupSummary {
        units: units.len(),
        alive: n_alive,
        dead: units.len() - n_alive,
        dense: units.iter().filter(|u| u.density > 0.1).count(),
        scored: alive.len(),
        unscored: n_alive - alive.len(),
        min_active,
        f1_quantiles: qs
            .iter()
            .filter_map(|&q| quantile(&scores, q).map(|v| (q, v)))
            .collect(),
        median_f1: quantile(&scores, 0.5),
        median_f1_ci,
        in_sample_monosemantic: in_sample.iter().filter(|&&s| s >= mono_threshold).count(),
        in_sample_median_f1: quantile(&sorted(in_sample), 0.5),
        median_band_precision: band_medians(&alive),
        mean_f1: (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64),
        monosemantic,
        monosemantic_frac: (!alive.is_empty()).then(|| monosemantic as f64 / alive.len() as f64),
        mono_threshold,
        median_kurtosis: quantile(&sorted(kx.clone()), 0.5),
        median_density: quantile(&sorted(alive.iter().map(|u| u.density).collect()), 0.5),
        spearman_kurtosis_f1: spearman(&kx, &ky),
        spearman_density_f1: spearman(&dens, &scores_in_order(&alive, f1)),
    }
}

fn scores_in_order(alive: &[&UnitStats], f1: impl Fn(&UnitStats) -> f64) -> Vec<f64> {
    alive.iter().map(|u| f1(u)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_hand() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.5), Some(2.5));
        assert_eq!(quantile(&v, 0.0), Some(1.0));
        assert_eq!(quantile(&v, 1.0), Some(4.0));
        // pos = 0.25 * 3 = 0.75 -> 1 + 0.75 * 1 = 1.75
        assert_eq!(quantile(&v, 0.25), Some(1.75));
        assert_eq!(quantile(&[], 0.5), None);
    }

    fn unit(active: u64, f1: f64, kurtosis: f64) -> UnitStats {
        use crate::explain::{Explanation, Hypothesis};
        let expl = |f1: f64| Explanation {
            hypothesis: Hypothesis::Token { token: 0 },
            hits: 0,
            support: 0,
            active,
            precision: 0.0,
            recall: 0.0,
            f1,
        };
        UnitStats {
            active_fit: active.div_ceil(2),
            active_heldout: active / 2,
            in_sample: (active > 0).then(|| expl((f1 + 0.3).min(1.0))),
            bands: vec![],
            id: 0,
            active,
            density: active as f64 / 1000.0,
            log10_density: None,
            threshold: 0.0,
            mean: 0.0,
            mean_active: None,
            std: 0.0,
            max: 1.0,
            skewness: None,
            kurtosis: Some(kurtosis),
            histogram: vec![],
            explanation: (active > 0).then(|| expl(f1)),
            explanation_text: None,
            counts_exact: true,
            top: vec![],
            quantiles: vec![],
        }
    }

    #[test]
    fn summary_by_hand() {
        // Scored (active on >= 10 rows of each half): F1 0.2, 0.6, 0.9 (kurtosis rising with
        // F1); one rare unit (active 3, F1 1.0) is unscored and one dead unit left out; density
        // 200/1000 is dense. In-sample F1s are 0.5, 0.9, 1.0.
        let units = [
            unit(100, 0.2, 5.0),
            unit(200, 0.6, 10.0),
            unit(50, 0.9, 50.0),
            unit(3, 1.0, 99.0),
            unit(0, 0.0, 1.0),
        ];
        let s = summarize(&units, 0.5, 10, 0);
        assert_eq!(
            (s.units, s.alive, s.dead, s.scored, s.unscored, s.dense),
            (5, 4, 1, 3, 1, 1)
        );
        assert!((s.in_sample_median_f1.unwrap() - 0.9).abs() < 1e-12);
        assert_eq!(s.in_sample_monosemantic, 3);
        let ci = s.median_f1_ci.unwrap();
        assert!(ci.lo >= 0.2 && ci.hi <= 0.9 && ci.lo <= 0.6 && ci.hi >= 0.6);
        // A unit active on 19 rows splits 10 / 9: not scored at min_active 10, scored at 9.
        assert!(!is_scored(&unit(19, 0.5, 1.0), 10) && is_scored(&unit(19, 0.5, 1.0), 9));
        assert_eq!(s.median_f1, Some(0.6));
        assert!((s.mean_f1.unwrap() - 1.7 / 3.0).abs() < 1e-12);
        assert_eq!(s.monosemantic, 2);
        assert!((s.monosemantic_frac.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.median_kurtosis, Some(10.0));
        assert_eq!(s.median_density, Some(0.1));
        assert!((s.spearman_kurtosis_f1.unwrap() - 1.0).abs() < 1e-12);
        // Density ranks 2, 3, 1 against F1 ranks 1, 2, 3: d = 1, 1, -2, sum d^2 = 6,
        // rho = 1 - 6 * 6 / (3 * (9 - 1)) = -0.5.
        assert!((s.spearman_density_f1.unwrap() + 0.5).abs() < 1e-12);
        // (0.25 quantile of [0.2, 0.6, 0.9]: pos 0.5 -> 0.4)
        assert!((s.f1_quantiles[1].1 - 0.4).abs() < 1e-12);
    }

    #[test]
    fn spearman_by_hand() {
        assert!(
            (spearman(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 30.0, 40.0]).unwrap() - 1.0).abs()
                < 1e-12
        );
        assert!(
            (spearman(&[1.0, 2.0, 3.0, 4.0], &[4.0, 3.0, 2.0, 1.0]).unwrap() + 1.0).abs() < 1e-12
        );
        // x ranks 1,2,3; y = [1, 3, 2] ranks 1,3,2: d = 0,-1,1; rho = 1 - 6*2/(3*8) = 0.5.
        assert!((spearman(&[1.0, 2.0, 3.0], &[1.0, 3.0, 2.0]).unwrap() - 0.5).abs() < 1e-12);
        // Ties get average ranks: [1, 1, 2] -> 1.5, 1.5, 3.
        assert_eq!(ranks(&[1.0, 1.0, 2.0]), vec![1.5, 1.5, 3.0]);
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
    }
}
