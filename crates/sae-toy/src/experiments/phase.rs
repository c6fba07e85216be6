//! Experiment 2: the phase diagram of n = 2 features in m = 1 dimension (ReLU-output model).
//! Feature 1 has importance 1, feature 2 a relative importance; both share a density 1 - S.
//! Each cell is one instance; its region: feature 2 not represented, feature 2 given the
//! dimension (feature 1 dropped), or both stored as an antipodal pair (superposition).

use serde::{Deserialize, Serialize};

use crate::error::{Result, ToyError};
use crate::measure::REPRESENTED_NORM;
use crate::model::{Instance, ModelKind, ToyModel};
use crate::rng::{fill_features, mix, Rng};
use crate::train::{train, TrainSettings};
use crate::Progress;

/// `points` values spaced evenly in log10 from `lo` to `hi` (both included).
pub fn logspace(lo: f64, hi: f64, points: usize) -> Vec<f64> {
    match points {
        0 => vec![],
        1 => vec![lo],
        _ => (0..points)
            .map(|i| {
                let t = i as f64 / (points - 1) as f64;
                10f64.powf(lo.log10() + t * (hi.log10() - lo.log10()))
            })
            .collect(),
    }
}

/// Settings of the phase diagram: the grid is densities x relative importances.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PhaseConfig {
    /// Feature densities 1 - S (default 12 points over 10^[-2, 0]).
    pub densities: Vec<f64>,
    /// Relative importances of feature 2 (default 12 points over 10^[-1, 1]).
    pub importances: Vec<f64>,
    /// Models trained per cell from different initialisations; the one with the lowest loss on
    /// a held-out sample is kept (gradient descent can stall in a worse local minimum).
    pub replicates: usize,
    /// Samples of the held-out loss that picks the replicate.
    pub eval_samples: usize,
}

impl Default for PhaseConfig {
    fn default() -> Self {
        PhaseConfig {
            densities: logspace(0.01, 1.0, 12),
            importances: logspace(0.1, 10.0, 12),
            replicates: 3,
            eval_samples: 20_000,
        }
    }
}

/// What a cell's trained W = [w1, w2] does with feature 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Region {
    /// Only feature 1 is represented.
    NotRepresented,
    /// Only feature 2 is represented: it has the dimension to itself.
    Dedicated,
    /// Both are represented with opposite signs (an antipodal pair).
    Superposition,
    /// Anything else (neither represented, or both with the same sign).
    Other,
}

/// The region of W = [w1, w2] (m = 1).
pub fn classify(w1: f32, w2: f32) -> Region {
    let (r1, r2) = (
        w1.abs() as f64 > REPRESENTED_NORM,
        w2.abs() as f64 > REPRESENTED_NORM,
    );
    match (r1, r2) {
        (true, false) => Region::NotRepresented,
        (false, true) => Region::Dedicated,
        (true, true) if w1 * w2 < 0.0 => Region::Superposition,
        _ => Region::Other,
    }
}

/// One cell of the diagram.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhaseCell {
    /// Density 1 - S of both features.
    pub density: f64,
    /// Importance of feature 2 relative to feature 1.
    pub relative_importance: f64,
    /// The trained W = [w1, w2].
    pub w: [f32; 2],
    /// The trained b.
    pub b: [f32; 2],
    /// What happened to feature 2.
    pub region: Region,
    /// Held-out loss of the kept replicate.
    pub loss: f64,
    /// Held-out losses of every replicate.
    pub replicate_losses: Vec<f64>,
}

/// Held-out loss of instance `k`: `samples` inputs from its own distribution.
fn held_out_loss(model: &ToyModel, k: usize, samples: usize, seed: u64) -> f64 {
    let mut rng = Rng::new(mix(seed ^ 0x4E1D, k as u64));
    let mut x = vec![0f32; samples * model.n];
    fill_features(&mut rng, model.instances[k].density(), &mut x);
    model.loss_one(k, &x)
}

/// Trains `replicates` instances per (density, importance), keeps the best of each cell by
/// held-out loss and classifies it.
pub fn run_phase(
    cfg: &PhaseConfig,
    settings: &TrainSettings,
    progress: &mut dyn Progress,
) -> Result<Vec<PhaseCell>> {
    for d in &cfg.densities {
        if !(*d > 0.0 && *d <= 1.0) {
            return Err(ToyError::Invalid(format!(
                "phase: density must be in (0, 1], got {d}"
            )));
        }
    }
    if cfg.replicates == 0 || cfg.eval_samples == 0 {
        return Err(ToyError::Invalid(
            "phase: replicates and eval_samples must be positive".into(),
        ));
    }
    let mut grid = Vec::new();
    for d in &cfg.densities {
        for r in &cfg.importances {
            grid.push((*d, *r));
        }
    }
    let reps = cfg.replicates;
    let instances: Vec<Instance> = grid
        .iter()
        .flat_map(|(d, r)| {
            std::iter::repeat_n(
                Instance {
                    sparsity: 1.0 - d,
                    importance: vec![1.0, *r],
                },
                reps,
            )
        })
        .collect();
    progress.begin("phase diagram", settings.steps);
    let trained = train(ModelKind::ReluOutput, 2, 1, &instances, settings, |s, l| {
        progress.step(s, l)
    })?;
    progress.end();
    let model = trained.model;
    Ok(grid
        .iter()
        .enumerate()
        .map(|(c, (d, r))| {
            let losses: Vec<f64> = (0..reps)
                .map(|j| held_out_loss(&model, c * reps + j, cfg.eval_samples, settings.seed))
                .collect();
            let best = (0..reps)
                .min_by(|a, b| losses[*a].total_cmp(&losses[*b]))
                .unwrap_or(0);
            let k = c * reps + best;
            let (w, b) = (model.w_of(k), model.b_of(k));
            PhaseCell {
                density: *d,
                relative_importance: *r,
                w: [w[0], w[1]],
                b: [b[0], b[1]],
                region: classify(w[0], w[1]),
                loss: losses[best],
                replicate_losses: losses,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_by_hand() {
        assert_eq!(classify(1.0, 0.1), Region::NotRepresented);
        assert_eq!(classify(-0.2, 0.9), Region::Dedicated);
        assert_eq!(classify(1.0, -1.0), Region::Superposition);
        assert_eq!(classify(1.0, 1.0), Region::Other);
        assert_eq!(classify(0.1, 0.0), Region::Other);
    }

    #[test]
    fn logspace_ends_and_spacing() {
        let v = logspace(0.01, 1.0, 3);
        assert!(
            (v[0] - 0.01).abs() < 1e-12 && (v[1] - 0.1).abs() < 1e-12 && (v[2] - 1.0).abs() < 1e-12
        );
    }
}
