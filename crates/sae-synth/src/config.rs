//! Settings of the synthetic superposition generator and their validation.

use sae_store::{DType, Source, SynthSource};

use crate::{HierarchySpec, SynthError};

/// Distribution of a firing feature's magnitude, as recorded in the manifest.
pub const MAGNITUDE: &str = "uniform(0,1)";

/// How to generate a synthetic store.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthConfig {
    /// Number of true features N.
    pub features: usize,
    /// Activation dimension D.
    pub dim: usize,
    /// Mean firing probability P over the features.
    pub firing_prob: f64,
    /// Zipf exponent A: feature i fires with probability proportional to (i+1)^-A (capped at 1),
    /// scaled so the mean is P. None = every feature fires with probability P.
    pub zipf_exponent: Option<f64>,
    /// Number of groups of correlated features (see [`crate::probs`] for the model). None = independent.
    pub correlated_groups: Option<usize>,
    /// Parent and child features (a parent fires whenever one of its children does); recorded
    /// with the held-out rows' firing features in the store's `hierarchy.json`.
    pub hierarchy: Option<HierarchySpec>,
    /// Number of samples (rows).
    pub samples: u64,
    /// Seed; the same seed and settings give the same store, bit for bit.
    pub seed: u64,
    /// Fraction of the rows held out as the eval split (the last rows).
    pub eval_frac: f64,
    /// On-disk element type.
    pub dtype: DType,
    /// Rows per shard (also the unit of per-block seeding, so it is part of the output's identity).
    pub shard_rows: usize,
}

impl SynthConfig {
    /// Defaults for everything but the sizes: no Zipf, no groups, seed 0, 5% eval, f32, 65,536-row shards.
    pub fn new(features: usize, dim: usize, firing_prob: f64, samples: u64) -> SynthConfig {
        SynthConfig {
            features,
            dim,
            firing_prob,
            zipf_exponent: None,
            correlated_groups: None,
            hierarchy: None,
            samples,
            seed: 0,
            eval_frac: 0.05,
            dtype: DType::F32,
            shard_rows: 65_536,
        }
    }

    /// Checks every setting's range.
    pub fn validate(&self) -> Result<(), SynthError> {
        let bad = |m: String| Err(SynthError::Invalid(m));
        if self.features == 0 || self.features > u32::MAX as usize {
            return bad(format!(
                "--features must be between 1 and 2^32-1, got {}",
                self.features
            ));
        }
        if self.dim == 0 {
            return bad("--dim must be positive".into());
        }
        if !(self.firing_prob > 0.0 && self.firing_prob <= 1.0) {
            return bad(format!(
                "--firing-prob must be in (0, 1], got {}",
                self.firing_prob
            ));
        }
        if let Some(a) = self.zipf_exponent {
            if !(a.is_finite() && a >= 0.0) {
                return bad(format!("--zipf-exponent must be finite and >= 0, got {a}"));
            }
        }
        if let Some(g) = self.correlated_groups {
            if g == 0 || g > self.features {
                return bad(format!(
                    "--correlated-groups must be between 1 and --features ({}), got {g}",
                    self.features
                ));
            }
        }
        if let Some(h) = &self.hierarchy {
            h.validate(self.features)?;
        }
        if self.samples == 0 {
            return bad("--samples must be positive".into());
        }
        if !(0.0..1.0).contains(&self.eval_frac) {
            return bad(format!(
                "--eval-frac must be in [0, 1), got {}",
                self.eval_frac
            ));
        }
        if self.shard_rows == 0 {
            return bad("--shard-rows must be positive".into());
        }
        Ok(())
    }

    /// Rows of the held-out split: round(samples * eval_frac).
    pub fn eval_rows(&self) -> u64 {
        (self.samples as f64 * self.eval_frac).round() as u64
    }

    /// The manifest's record of these settings.
    pub fn source(&self) -> Source {
        Source::Synthetic(SynthSource {
            features: self.features,
            dim: self.dim,
            firing_prob: self.firing_prob,
            zipf_exponent: self.zipf_exponent,
            correlated_groups: self.correlated_groups,
            samples: self.samples,
            seed: self.seed,
            magnitude: MAGNITUDE.to_string(),
        })
    }
}
