//! The nested prefixes of a Matryoshka dictionary, from the config's group fractions, and the
//! schedule of their loss weights (a pure function of the step, so a resumed run replays it).

use crate::error::{Result, TrainError};

/// Nested prefixes of the dictionary: group s holds latents `widths[s-1]..widths[s]` (from 0), the
/// last width is d_sae; every prefix but the full one carries a loss weight.
#[derive(Clone, Debug, PartialEq)]
pub struct Prefixes {
    /// Cumulative widths, increasing, the last equal to d_sae.
    pub widths: Vec<usize>,
    /// Loss weight of each inner prefix (widths.len() - 1 of them).
    pub weights: Vec<f64>,
}

impl Prefixes {
    /// Widths from `fractions` (positive, summing to 1) of `d_sae` latents, rounded so that every
    /// group keeps at least one latent; `weights` default to 1 for every inner prefix.
    pub fn new(fractions: &[f64], weights: Option<&[f64]>, d_sae: usize) -> Result<Prefixes> {
        let bad = |m: String| Err(TrainError::Invalid(m));
        if fractions.is_empty() {
            return bad("group_fractions must name at least one group".into());
        }
        if fractions.iter().any(|f| !(f.is_finite() && *f > 0.0)) {
            return bad(format!("group_fractions must be > 0, got {fractions:?}"));
        }
        let total: f64 = fractions.iter().sum();
        if (total - 1.0).abs() > 1e-6 {
            return bad(format!(
                "group_fractions must sum to 1, they sum to {total}"
            ));
        }
        if fractions.len() > d_sae {
            return bad(format!(
                "{} groups do not fit in {d_sae} latents",
                fractions.len()
            ));
        }
        let n = fractions.len();
        let mut widths = Vec::with_capacity(n);
        let mut acc = 0.0;
        for (s, f) in fractions.iter().enumerate() {
            acc += f;
            let w = if s + 1 == n {
                d_sae
            } else {
                let lo = widths.last().map_or(1, |p| p + 1);
                ((acc * d_sae as f64).round() as usize).clamp(lo, d_sae - (n - 1 - s))
            };
            widths.push(w);
        }
        let weights = match weights {
            None => vec![1.0; n - 1],
            Some(w) if w.len() != n - 1 => {
                return bad(format!(
                    "group_weights needs one weight per inner prefix ({}), got {}",
                    n - 1,
                    w.len()
                ))
            }
            Some(w) if w.iter().any(|v| !(v.is_finite() && *v >= 0.0)) => {
                return bad(format!("group_weights must be >= 0, got {w:?}"))
            }
            Some(w) => w.to_vec(),
        };
        Ok(Prefixes { widths, weights })
    }

    /// The group of latent `j`.
    pub fn group_of(&self, j: usize) -> usize {
        self.widths.partition_point(|&w| w <= j)
    }
}

/// The config's groups with the inner prefixes' weights over training: `start` until step
/// `ramp[0] * steps`, linear to `start * end_scale` by `ramp[1] * steps`, constant afterwards.
#[derive(Clone, Debug, PartialEq)]
pub struct PrefixSchedule {
    /// Group fractions, innermost first.
    pub fractions: Vec<f64>,
    /// Inner weights at the start (the config's `group_weights`, default 1 each).
    pub start: Vec<f64>,
    /// The final weights over the starting ones (1: no ramp).
    pub end_scale: f64,
    /// Ramp start and end, fractions of the steps.
    pub ramp: [f64; 2],
}

impl PrefixSchedule {
    /// The schedule of a config (unchecked: see [`PrefixSchedule::check`]).
    pub fn new(
        fractions: &[f64],
        start: Option<&[f64]>,
        end_scale: f64,
        ramp: [f64; 2],
    ) -> PrefixSchedule {
        let inner = fractions.len().saturating_sub(1);
        PrefixSchedule {
            fractions: fractions.to_vec(),
            start: start.map_or_else(|| vec![1.0; inner], <[f64]>::to_vec),
            end_scale,
            ramp,
        }
    }

    /// Refuses a negative or non-finite final scale and a ramp outside 0 <= start <= end <= 1.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::Invalid(m));
        if !(self.end_scale.is_finite() && self.end_scale >= 0.0) {
            return bad(format!(
                "final_weight_scale must be >= 0, got {}",
                self.end_scale
            ));
        }
        let [a, b] = self.ramp;
        if !(0.0 <= a && a <= b && b <= 1.0) {
            return bad(format!(
                "weight_ramp must satisfy 0 <= start <= end <= 1, got {:?}",
                self.ramp
            ));
        }
        Ok(())
    }

    /// The inner weights at `step` (0-based) of `steps`; None without a ramp (scale 1: the
    /// static weights of [`Prefixes`] apply).
    pub fn weights_at(&self, step: u64, steps: u64) -> Option<Vec<f64>> {
        if self.end_scale == 1.0 {
            return None;
        }
        let n = steps as f64;
        let (a, b) = (self.ramp[0] * n, self.ramp[1] * n);
        let s = step as f64;
        let t = if s >= b {
            1.0
        } else if s < a {
            0.0
        } else {
            (s - a) / (b - a)
        };
        let scale = 1.0 + (self.end_scale - 1.0) * t;
        Some(self.start.iter().map(|w| w * scale).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_are_the_rounded_cumulative_fractions() {
        let p = Prefixes::new(&[0.0625, 0.1875, 0.75], None, 1024).unwrap();
        assert_eq!(p.widths, vec![64, 256, 1024]);
        assert_eq!(p.weights, vec![1.0, 1.0]);
        assert_eq!(
            (
                p.group_of(0),
                p.group_of(63),
                p.group_of(64),
                p.group_of(1023)
            ),
            (0, 0, 1, 2)
        );
        // Tiny dictionaries still give every group a latent.
        let p = Prefixes::new(&[0.01, 0.01, 0.98], Some(&[2.0, 0.5]), 3).unwrap();
        assert_eq!(p.widths, vec![1, 2, 3]);
        assert_eq!(p.weights, vec![2.0, 0.5]);
        assert_eq!(Prefixes::new(&[1.0], None, 10).unwrap().widths, vec![10]);
    }

    #[test]
    fn bad_groups_are_refused() {
        for (f, w, d) in [
            (vec![0.5, 0.4], None, 100),
            (vec![0.5, -0.5, 1.0], None, 100),
            (vec![], None, 100),
            (vec![0.25, 0.25, 0.25, 0.25], None, 3),
            (vec![0.5, 0.5], Some(vec![1.0, 1.0]), 100),
            (vec![0.5, 0.5], Some(vec![-1.0]), 100),
        ] {
            assert!(
                Prefixes::new(&f, w.as_deref(), d).is_err(),
                "{f:?} {w:?} {d}"
            );
        }
    }

    #[test]
    fn weights_ramp_linearly_between_the_fractions() {
        let f = [0.25, 0.25, 0.5];
        let s = PrefixSchedule::new(&f, Some(&[1.0, 0.5]), 0.0, [0.5, 0.75]);
        s.check().unwrap();
        // 100 steps: weights (1, 0.5) until step 50, then linear to 0 at step 75.
        assert_eq!(s.weights_at(0, 100), Some(vec![1.0, 0.5]));
        assert_eq!(s.weights_at(49, 100), Some(vec![1.0, 0.5]));
        assert_eq!(s.weights_at(50, 100), Some(vec![1.0, 0.5]));
        assert_eq!(s.weights_at(60, 100), Some(vec![0.6, 0.3]));
        assert_eq!(s.weights_at(75, 100), Some(vec![0.0, 0.0]));
        assert_eq!(s.weights_at(99, 100), Some(vec![0.0, 0.0]));
        // A step ramp (start = end) switches at once; default weights are 1.
        let s = PrefixSchedule::new(&f, None, 0.25, [0.3, 0.3]);
        assert_eq!(s.weights_at(29, 100), Some(vec![1.0, 1.0]));
        assert_eq!(s.weights_at(30, 100), Some(vec![0.25, 0.25]));
        // Scale 1: no schedule.
        assert_eq!(
            PrefixSchedule::new(&f, None, 1.0, [0.0, 1.0]).weights_at(5, 10),
            None
        );
    }

    #[test]
    fn bad_schedules_are_refused() {
        let f = [0.25, 0.25, 0.5];
        for (scale, ramp) in [
            (-0.1, [0.0, 1.0]),
            (f64::NAN, [0.0, 1.0]),
            (f64::INFINITY, [0.0, 1.0]),
            (0.5, [0.6, 0.5]),
            (0.5, [-0.1, 0.5]),
            (0.5, [0.5, 1.5]),
            (0.5, [f64::NAN, 1.0]),
        ] {
            let s = PrefixSchedule::new(&f, None, scale, ramp);
            assert!(s.check().is_err(), "{scale} {ramp:?}");
        }
    }
}
