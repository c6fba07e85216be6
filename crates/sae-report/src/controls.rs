//! Control groups, analysed by exactly the code that analyses the real units: an untrained SAE
//! of the same architecture and width (built by the caller, who knows how training initialises
//! one), and random unit directions in the SAE's input space, thresholded as basis directions
//! are. Also the latents-minus-group comparisons of median held-out F1.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::bootstrap::difference_interval;
use crate::schema::{Comparison, GroupReport, UnitKind};
use crate::summary::{quantile, scored_f1};

/// A control group a report may add.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    /// The SAE's architecture and width at its initialisation, never trained.
    Untrained,
    /// Random unit directions (as many as the input has dimensions).
    Random,
}

/// `m` random unit directions in R^d (normalised Gaussians, seeded): [m, d] row-major.
pub fn random_directions(m: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut state = seed ^ 0x0D1E_C710;
    let mut uniform = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut out = vec![0f32; m * d];
    for row in out.chunks_mut(d) {
        for v in row.iter_mut() {
            // Box-Muller: a standard normal.
            let (u1, u2) = (uniform().max(1e-300), uniform());
            *v = ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32;
        }
        let n = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|v| *v /= n);
    }
    out
}

/// The directions as a tensor [m, d].
pub(crate) fn directions_tensor(
    m: usize,
    d: usize,
    seed: u64,
) -> Result<Tensor, candle_core::Error> {
    Tensor::from_vec(random_directions(m, d, seed), (m, d), &Device::Cpu)
}

/// The latents' median held-out F1 minus every other group's, with bootstrap intervals.
pub fn comparisons(groups: &[GroupReport], min_active: u64, seed: u64) -> Vec<Comparison> {
    let Some(latents) = groups.iter().find(|g| g.kind == UnitKind::Latents) else {
        return vec![];
    };
    let a = scored_f1(&latents.units, min_active);
    let median = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        quantile(&s, 0.5)
    };
    groups
        .iter()
        .filter(|g| g.kind != UnitKind::Latents)
        .map(|g| {
            let b = scored_f1(&g.units, min_active);
            Comparison {
                kind: g.kind,
                label: g.label.clone(),
                difference: median(&a).zip(median(&b)).map(|(x, y)| x - y),
                interval: difference_interval(&a, &b, seed),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directions_are_unit_seeded_and_spread() {
        let d = 64;
        let v = random_directions(200, d, 3);
        assert_eq!(v, random_directions(200, d, 3));
        assert_ne!(v, random_directions(200, d, 4));
        for row in v.chunks(d) {
            let n: f32 = row.iter().map(|x| x * x).sum();
            assert!((n - 1.0).abs() < 1e-5);
        }
        // Isotropic: the mean direction is near 0 (|mean| ~ 1/sqrt(200) = 0.07), and the mean
        // squared cosine between two directions is 1/d.
        let mean: Vec<f32> = (0..d)
            .map(|j| v.chunks(d).map(|r| r[j]).sum::<f32>() / 200.0)
            .collect();
        assert!(mean.iter().map(|x| x * x).sum::<f32>().sqrt() < 0.15);
        let rows: Vec<&[f32]> = v.chunks(d).collect();
        let mut c2 = 0.0;
        for i in 0..100 {
            let dot: f32 = rows[i].iter().zip(rows[i + 100]).map(|(a, b)| a * b).sum();
            c2 += (dot * dot) as f64 / 100.0;
        }
        assert!(
            (c2 - 1.0 / d as f64).abs() < 0.6 / d as f64,
            "mean cos^2 {c2}"
        );
    }
}
