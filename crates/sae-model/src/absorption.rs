//! Feature absorption on a synthetic store with hierarchical features (`sae synth --parents`).
//!
//! Definitions (decoder rows d_j, true feature directions t_i, the store's `hierarchy.json`):
//! - the latent of a true feature i is L_i = argmax_j cos(d_j, t_i) (ties: the lowest j);
//! - parent p's rows are the held-out rows where p fires together with at least one of its
//!   children (the rows where a child's latent could have taken p's place);
//! - such a row is *absorbed* when L_p is off (activation 0) while, for some child c of p firing
//!   in the row, L_c (distinct from L_p) is on and its decoder row carries p's direction:
//!   cos(d_{L_c}, t_p) >= [`ABSORBING_COSINE`];
//! - parent p's score is absorbed rows / rows; the SAE's score is the mean over the parents that
//!   have rows. 0: every parent latent fires with its children; 1: children's latents always
//!   stand in for it.

use serde::{Deserialize, Serialize};

use sae_store::Hierarchy;

use crate::SaeError;

/// Cosine with the parent's direction above which a child's latent has absorbed it: random
/// directions in d dimensions have cosines of about 1/sqrt(d) (0.09 at d = 128), and a latent
/// for `child + parent` has about 0.7.
pub const ABSORBING_COSINE: f64 = 0.3;

/// One parent's absorption.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParentAbsorption {
    /// The parent's index among the true features.
    pub feature: u32,
    /// Its latent (best decoder cosine).
    pub latent: usize,
    /// Held-out rows where it fires with a child.
    pub rows: u64,
    /// Of those, the absorbed ones.
    pub absorbed: u64,
}

/// The absorption score of an SAE on a hierarchical store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AbsorptionMetrics {
    /// Mean over the parents with rows of absorbed / rows (`None` when no parent has rows).
    pub mean: Option<f64>,
    /// Every parent.
    pub parents: Vec<ParentAbsorption>,
}

#[derive(Clone, Debug)]
struct ChildMatch {
    feature: u32,
    latent: usize,
    carries_parent: bool,
}

#[derive(Clone, Debug)]
struct ParentMatch {
    feature: u32,
    latent: usize,
    children: Vec<ChildMatch>,
}

/// Streams the held-out rows' latents (in row order) and counts absorbed rows per parent.
#[derive(Clone, Debug)]
pub struct AbsorptionStats {
    matches: Vec<ParentMatch>,
    firing: Vec<Vec<u32>>,
    next_row: usize,
    rows: Vec<u64>,
    absorbed: Vec<u64>,
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let n = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let den = n(a) * n(b);
    if den > 0.0 {
        dot / den
    } else {
        0.0
    }
}

/// The decoder row with the largest cosine with `t` (the lowest index on ties).
fn best_latent(t: &[f32], decoder: &[f32], d: usize) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (j, row) in decoder.chunks_exact(d).enumerate() {
        let c = cosine(t, row);
        if c > best.1 {
            best = (j, c);
        }
    }
    best.0
}

impl AbsorptionStats {
    /// Matches the hierarchy's features (`features` [n, d]) with the decoder rows (`decoder`
    /// [d_sae, d]); `hierarchy.eval_firing` lists the rows that [`AbsorptionStats::push`] gets.
    pub fn new(
        features: &[f32],
        decoder: &[f32],
        d: usize,
        hierarchy: Hierarchy,
    ) -> Result<AbsorptionStats, SaeError> {
        let n = features.len() / d;
        let feature = |i: u32| -> Result<&[f32], SaeError> {
            let i = i as usize;
            (i < n)
                .then(|| &features[i * d..(i + 1) * d])
                .ok_or_else(|| {
                    SaeError::Invalid(format!(
                        "hierarchy.json names feature {i}, but the ground truth has {n}"
                    ))
                })
        };
        let mut matches = Vec::with_capacity(hierarchy.parents.len());
        for p in &hierarchy.parents {
            let tp = feature(p.feature)?;
            let latent = best_latent(tp, decoder, d);
            let mut children = Vec::with_capacity(p.children.len());
            for &c in &p.children {
                let l = best_latent(feature(c)?, decoder, d);
                let carries = cosine(&decoder[l * d..(l + 1) * d], tp) >= ABSORBING_COSINE;
                children.push(ChildMatch {
                    feature: c,
                    latent: l,
                    carries_parent: carries && l != latent,
                });
            }
            matches.push(ParentMatch {
                feature: p.feature,
                latent,
                children,
            });
        }
        let k = matches.len();
        Ok(AbsorptionStats {
            matches,
            firing: hierarchy.eval_firing,
            next_row: 0,
            rows: vec![0; k],
            absorbed: vec![0; k],
        })
    }

    /// Adds the latents f [n, d_sae] of the next n held-out rows.
    pub fn push(&mut self, f: &[f32], d_sae: usize) -> Result<(), SaeError> {
        for row in f.chunks_exact(d_sae) {
            let on = self.firing.get(self.next_row).ok_or_else(|| {
                SaeError::Invalid(format!(
                    "hierarchy.json lists the firing features of {} held-out rows, but the store has more",
                    self.firing.len()
                ))
            })?;
            for (k, m) in self.matches.iter().enumerate() {
                if on.binary_search(&m.feature).is_err() {
                    continue;
                }
                let mut children = m
                    .children
                    .iter()
                    .filter(|c| on.binary_search(&c.feature).is_ok())
                    .peekable();
                if children.peek().is_none() {
                    continue;
                }
                self.rows[k] += 1;
                let absorbed = row[m.latent] == 0.0
                    && children.any(|c| c.carries_parent && row[c.latent] != 0.0);
                self.absorbed[k] += absorbed as u64;
            }
            self.next_row += 1;
        }
        Ok(())
    }

    /// The scores; an error unless every listed row was pushed.
    pub fn finish(&self) -> Result<AbsorptionMetrics, SaeError> {
        if self.next_row != self.firing.len() {
            return Err(SaeError::Invalid(format!(
                "hierarchy.json lists {} held-out rows, but the store has {}",
                self.firing.len(),
                self.next_row
            )));
        }
        let parents: Vec<ParentAbsorption> = self
            .matches
            .iter()
            .enumerate()
            .map(|(k, m)| ParentAbsorption {
                feature: m.feature,
                latent: m.latent,
                rows: self.rows[k],
                absorbed: self.absorbed[k],
            })
            .collect();
        let scored: Vec<f64> = parents
            .iter()
            .filter(|p| p.rows > 0)
            .map(|p| p.absorbed as f64 / p.rows as f64)
            .collect();
        let mean = (!scored.is_empty()).then(|| scored.iter().sum::<f64>() / scored.len() as f64);
        Ok(AbsorptionMetrics { mean, parents })
    }
}
