//! Firing probabilities of the true features, and the correlated-groups model.
//!
//! Marginals: without Zipf every feature fires with probability P. With Zipf exponent A, feature i
//! fires with p_i = min(1, c (i+1)^-A), c chosen (by bisection) so that mean_i p_i = P.
//!
//! Correlated groups (G groups): feature i belongs to group i mod G (so each group mixes frequent
//! and rare features). Per sample, group g turns on independently with probability
//! q_g = min(1, GROUP_BOOST * max_{i in g} p_i); when it is on, each member i fires independently
//! with probability p_i / q_g (<= 1); members of an off group never fire. Each feature's marginal
//! firing probability is therefore exactly p_i, while two members i, j of one group co-fire with
//! probability p_i p_j / q_g instead of p_i p_j (all members at p = 0.01: 0.002 instead of 0.0001).

/// How much more likely a group is to be on than its most frequent member is to fire.
pub const GROUP_BOOST: f64 = 5.0;

/// Marginal firing probability of each of `n` features: mean `p`, Zipfian when `zipf` is given.
pub fn firing_probs(n: usize, p: f64, zipf: Option<f64>) -> Vec<f64> {
    let a = match zipf {
        Some(a) if a > 0.0 => a,
        _ => return vec![p.min(1.0); n],
    };
    let w: Vec<f64> = (0..n).map(|i| ((i + 1) as f64).powf(-a)).collect();
    if p >= 1.0 {
        return vec![1.0; n];
    }
    let mean = |c: f64| w.iter().map(|wi| (c * wi).min(1.0)).sum::<f64>() / n as f64;
    // mean(c) rises from 0 to 1 at c = 1 / min(w); bisect for mean(c) = p.
    let (mut lo, mut hi) = (0.0f64, 1.0 / w[n - 1]);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mean(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let c = 0.5 * (lo + hi);
    w.iter().map(|wi| (c * wi).min(1.0)).collect()
}

/// The correlated-groups model: group membership, group on-probabilities and conditional
/// member probabilities.
#[derive(Clone, Debug)]
pub struct Groups {
    /// Feature ids of each group: [G][members].
    pub members: Vec<Vec<u32>>,
    /// Probability that each group is on: [G].
    pub on_prob: Vec<f64>,
    /// Probability that each member fires given its group is on, aligned with `members`.
    pub member_prob: Vec<Vec<f64>>,
}

impl Groups {
    /// Builds `g` groups over features with marginals `probs` (feature i in group i mod g).
    pub fn new(probs: &[f64], g: usize) -> Groups {
        let mut members = vec![Vec::new(); g];
        for i in 0..probs.len() {
            members[i % g].push(i as u32);
        }
        let on_prob: Vec<f64> = members
            .iter()
            .map(|m| {
                let max = m.iter().map(|&i| probs[i as usize]).fold(0.0, f64::max);
                (GROUP_BOOST * max).min(1.0)
            })
            .collect();
        let member_prob = members
            .iter()
            .zip(&on_prob)
            .map(|(m, &q)| {
                m.iter()
                    .map(|&i| {
                        if q > 0.0 {
                            (probs[i as usize] / q).min(1.0)
                        } else {
                            0.0
                        }
                    })
                    .collect()
            })
            .collect();
        Groups {
            members,
            on_prob,
            member_prob,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_without_zipf() {
        assert_eq!(firing_probs(3, 0.25, None), vec![0.25; 3]);
    }

    #[test]
    fn zipf_by_hand() {
        // A = 1, n = 2, P = 0.3: p = (c, c/2), mean 3c/4 = 0.3 -> c = 0.4.
        let p = firing_probs(2, 0.3, Some(1.0));
        assert!(
            (p[0] - 0.4).abs() < 1e-12 && (p[1] - 0.2).abs() < 1e-12,
            "{p:?}"
        );
    }

    #[test]
    fn zipf_caps_at_one_and_keeps_the_mean() {
        // A = 1, n = 2, P = 0.9: uncapped c = 1.2 would give p0 = 1.2; capped: (1, c/2) with
        // (1 + c/2)/2 = 0.9 -> c = 1.6, p1 = 0.8.
        let p = firing_probs(2, 0.9, Some(1.0));
        assert!(
            (p[0] - 1.0).abs() < 1e-12 && (p[1] - 0.8).abs() < 1e-9,
            "{p:?}"
        );
        let p = firing_probs(512, 0.01, Some(1.2));
        let mean = p.iter().sum::<f64>() / 512.0;
        assert!((mean - 0.01).abs() < 1e-12 && p.iter().all(|v| *v <= 1.0));
    }

    #[test]
    fn groups_keep_marginals() {
        let probs = [0.1, 0.02, 0.3, 0.04, 0.05];
        let g = Groups::new(&probs, 2);
        assert_eq!(g.members, vec![vec![0, 2, 4], vec![1, 3]]);
        // Group 0: q = min(1, 5 * 0.3) = 1; group 1: q = 5 * 0.04 = 0.2.
        assert_eq!(g.on_prob, vec![1.0, 0.2]);
        for (gi, m) in g.members.iter().enumerate() {
            for (j, &i) in m.iter().enumerate() {
                let marginal = g.on_prob[gi] * g.member_prob[gi][j];
                assert!((marginal - probs[i as usize]).abs() < 1e-12);
            }
        }
    }
}
