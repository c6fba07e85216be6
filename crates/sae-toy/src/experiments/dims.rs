//! Experiment 3: feature dimensionality. n = 200 features of equal importance in m = 20
//! dimensions over a range of sparsities: D* = m / ||W||_F^2 against 1/(1 - S) sticks at 1/2
//! (antipodal pairs), and the D_i of represented features cluster at 1, 3/4, 2/3, 1/2, 2/5, 3/8.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::experiments::phase::logspace;
use crate::measure::geometry;
use crate::model::{Instance, ModelKind};
use crate::train::{train, TrainSettings};
use crate::Progress;

/// Width of a D_i histogram bin; bins are centred on multiples of it, so that 1, 3/4, 1/2, 2/5
/// and 3/8 are bin centres and 2/3 lies inside a bin.
pub const DIM_BIN: f64 = 1.0 / 40.0;

/// D* within this distance of 1/2 counts as on the plateau.
pub const PLATEAU_TOL: f64 = 0.05;

/// Settings of experiment 3.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DimsConfig {
    /// Features n.
    pub features: usize,
    /// Hidden dimensions m.
    pub hidden: usize,
    /// Importance I_i = r^i (1: all equal).
    pub importance_decay: f64,
    /// Values of 1 / (1 - S), one instance each (default 24 points over 10^[0, 2]).
    pub inverse_densities: Vec<f64>,
}

impl Default for DimsConfig {
    fn default() -> Self {
        DimsConfig {
            features: 200,
            hidden: 20,
            importance_decay: 1.0,
            inverse_densities: logspace(1.0, 100.0, 24),
        }
    }
}

/// One sparsity level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DimsLevel {
    /// Sparsity S.
    pub sparsity: f64,
    /// 1 / (1 - S).
    pub inverse_density: f64,
    /// m / ||W||_F^2.
    pub d_star: f64,
    /// Features with ||W_i|| above the representation threshold.
    pub represented: usize,
    /// D_i of the represented features.
    pub dimensionality: Vec<f64>,
    /// Loss on the last training batch.
    pub loss: f64,
}

/// The result of experiment 3.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DimsResult {
    /// One per sparsity, in the config's order.
    pub levels: Vec<DimsLevel>,
    /// The longest run of consecutive levels with |D* - 1/2| <= [`PLATEAU_TOL`] (indices).
    pub plateau: Vec<usize>,
    /// Histogram of D_i over the represented features of the plateau's levels: counts per bin
    /// centred on k * [`DIM_BIN`], k = 0 ..= 41.
    pub plateau_histogram: Vec<usize>,
    /// Centre of the most populated bin of `plateau_histogram` (None without a plateau).
    pub plateau_mode: Option<f64>,
    /// Histogram of D_i over the represented features of every level (same bins).
    pub histogram: Vec<usize>,
}

/// Histogram of values in bins of [`DIM_BIN`] centred on its multiples, k = 0 ..= 41.
pub fn dim_histogram(values: impl IntoIterator<Item = f64>) -> Vec<usize> {
    let mut h = vec![0usize; 42];
    for v in values {
        let k = (v / DIM_BIN).round();
        if (0.0..42.0).contains(&k) {
            h[k as usize] += 1;
        }
    }
    h
}

/// The longest run of consecutive indices whose value is within [`PLATEAU_TOL`] of 1/2 (the
/// first such run on a tie).
pub fn plateau(d_star: &[f64]) -> Vec<usize> {
    let (mut best, mut cur) = (Vec::new(), Vec::new());
    for (i, d) in d_star.iter().enumerate() {
        if (d - 0.5).abs() <= PLATEAU_TOL {
            cur.push(i);
            if cur.len() > best.len() {
                best = cur.clone();
            }
        } else {
            cur.clear();
        }
    }
    best
}

/// Trains one instance per sparsity and measures D* and D_i.
pub fn run_dims(
    cfg: &DimsConfig,
    settings: &TrainSettings,
    progress: &mut dyn Progress,
) -> Result<DimsResult> {
    let instances: Vec<Instance> = cfg
        .inverse_densities
        .iter()
        .map(|v| Instance::decaying(cfg.features, 1.0 - 1.0 / v, cfg.importance_decay))
        .collect();
    progress.begin("feature dimensionality", settings.steps);
    let trained = train(
        ModelKind::ReluOutput,
        cfg.features,
        cfg.hidden,
        &instances,
        settings,
        |s, l| progress.step(s, l),
    )?;
    progress.end();
    let model = &trained.model;
    let levels: Vec<DimsLevel> = (0..instances.len())
        .map(|k| {
            let g = geometry(model.w_of(k), cfg.hidden, cfg.features);
            let dims = g
                .norms
                .iter()
                .zip(&g.dimensionality)
                .filter(|(n, _)| **n > crate::measure::REPRESENTED_NORM)
                .map(|(_, d)| *d)
                .collect();
            DimsLevel {
                sparsity: instances[k].sparsity,
                inverse_density: cfg.inverse_densities[k],
                d_star: g.d_star,
                represented: g.represented,
                dimensionality: dims,
                loss: trained.final_loss[k],
            }
        })
        .collect();
    let plat = plateau(&levels.iter().map(|l| l.d_star).collect::<Vec<_>>());
    let hist = dim_histogram(plat.iter().flat_map(|&i| levels[i].dimensionality.clone()));
    let mode = (!plat.is_empty())
        .then(|| {
            let (k, _) = hist
                .iter()
                .enumerate()
                .max_by_key(|(k, c)| (**c, usize::MAX - k))?;
            Some(k as f64 * DIM_BIN)
        })
        .flatten();
    Ok(DimsResult {
        plateau: plat,
        plateau_histogram: hist,
        plateau_mode: mode,
        histogram: dim_histogram(levels.iter().flat_map(|l| l.dimensionality.clone())),
        levels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_bins_are_centred() {
        let h = dim_histogram([0.5, 0.49, 0.51, 0.4, 0.375, 2.0 / 3.0, 1.0, 0.0]);
        assert_eq!(h[20], 3);
        assert_eq!(h[16], 1);
        assert_eq!(h[15], 1);
        assert_eq!(h[27], 1);
        assert_eq!(h[40], 1);
        assert_eq!(h[0], 1);
    }

    #[test]
    fn longest_plateau_run() {
        let d = [1.0, 0.52, 0.6, 0.5, 0.47, 0.46, 0.3, 0.5];
        assert_eq!(plateau(&d), vec![3, 4, 5]);
        assert!(plateau(&[1.0, 0.2]).is_empty());
    }
}
