//! Next-token losses and divergences of one position, and their sums over an evaluation.

use serde::{Deserialize, Serialize};

use crate::site::Site;

/// `out = log softmax(logits)`, the normaliser summed in f64.
pub fn log_softmax(logits: &[f32], out: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&z| (z as f64 - max).exp()).sum();
    let log_z = max + sum.ln();
    for (o, &z) in out.iter_mut().zip(logits) {
        *o = (z as f64 - log_z) as f32;
    }
}

/// Cross-entropy of the next token `target` under `logits`: `logsumexp(logits) - logits[target]`.
pub fn cross_entropy(logits: &[f32], target: u32) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&z| (z as f64 - max).exp()).sum();
    max + sum.ln() - logits[target as usize] as f64
}

/// KL(p || q) = sum_i p_i (log p_i - log q_i) from log-probabilities, summed over the vocabulary.
pub fn kl_divergence(log_p: &[f32], log_q: &[f32]) -> f64 {
    log_p
        .iter()
        .zip(log_q)
        .map(|(&lp, &lq)| {
            let (lp, lq) = (lp as f64, lq as f64);
            if lp == f64::NEG_INFINITY {
                0.0
            } else {
                lp.exp() * (lp - lq)
            }
        })
        .sum()
}

/// Sums over the scored positions of an evaluation (add batches with [`LossSums::add`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LossSums {
    /// Positions scored.
    pub positions: u64,
    /// Sum of the clean model's next-token cross-entropy.
    pub ce_clean: f64,
    /// ... with the SAE's reconstruction spliced in.
    pub ce_sae: f64,
    /// ... with the hooked activation zero-ablated.
    pub ce_zero: f64,
    /// Sum of KL(clean || spliced) of the next-token distributions.
    pub kl_sae: f64,
    /// Sum of KL(clean || zero-ablated).
    pub kl_zero: f64,
}

impl LossSums {
    /// Adds another batch's sums.
    pub fn add(&mut self, o: &LossSums) {
        self.positions += o.positions;
        self.ce_clean += o.ce_clean;
        self.ce_sae += o.ce_sae;
        self.ce_zero += o.ce_zero;
        self.kl_sae += o.kl_sae;
        self.kl_zero += o.kl_zero;
    }

    /// Means and scores of the splice at `site`.
    pub fn metrics(&self, model: &str, site: &Site) -> SplicedMetrics {
        let n = self.positions.max(1) as f64;
        let (ce_clean, ce_sae, ce_zero) = (self.ce_clean / n, self.ce_sae / n, self.ce_zero / n);
        let (kl_sae, kl_zero) = (self.kl_sae / n, self.kl_zero / n);
        let ratio = |num: f64, den: f64| (den != 0.0).then(|| num / den);
        SplicedMetrics {
            model: model.to_string(),
            hook: site.read().name(),
            hook_out: site.is_pair().then(|| site.write().name()),
            tokens: self.positions,
            ce_clean,
            ce_sae,
            ce_zero,
            ce_loss_recovered: ratio(ce_zero - ce_sae, ce_zero - ce_clean),
            delta_lm_loss: ce_sae - ce_clean,
            kl_sae,
            kl_zero,
            kl_div_score: ratio(kl_zero - kl_sae, kl_zero),
        }
    }
}

/// An SAE's effect inside the model (SAELens' definitions). Means are over scored positions: every
/// position whose own token and next token are not special tokens. Written as `eval_spliced.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplicedMetrics {
    /// The model, as given.
    pub model: String,
    /// The hook point the SAE was spliced in at (a transcoder's input hook).
    pub hook: String,
    /// A transcoder's output hook, whose activation its prediction replaced (and the zero ablation
    /// zeroed); absent for an SAE, which replaces `hook` itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_out: Option<String>,
    /// Positions scored.
    pub tokens: u64,
    /// Mean next-token cross-entropy (nats) of the clean model.
    pub ce_clean: f64,
    /// ... with the SAE's reconstruction in place of the hooked activation (a transcoder's prediction in
    /// place of `hook_out`'s).
    pub ce_sae: f64,
    /// ... with the hooked activation (a transcoder's: `hook_out`'s) zero-ablated.
    pub ce_zero: f64,
    /// (ce_zero - ce_sae) / (ce_zero - ce_clean): 1 for a perfect SAE, 0 for one as bad as ablation;
    /// null when zero ablation does not change the loss.
    pub ce_loss_recovered: Option<f64>,
    /// ce_sae - ce_clean.
    pub delta_lm_loss: f64,
    /// Mean KL(clean || spliced) of the next-token distributions (nats).
    pub kl_sae: f64,
    /// Mean KL(clean || zero-ablated).
    pub kl_zero: f64,
    /// (kl_zero - kl_sae) / kl_zero; null when kl_zero is 0.
    pub kl_div_score: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_and_log_softmax_match_a_hand_computation() {
        // softmax of logits ln(1), ln(2), ln(5) is 1/8, 2/8, 5/8.
        let logits = [0.0f32, 2f32.ln(), 5f32.ln()];
        assert!((cross_entropy(&logits, 2) - (8.0f64 / 5.0).ln()).abs() < 1e-7);
        assert!((cross_entropy(&logits, 0) - 8.0f64.ln()).abs() < 1e-7);
        let mut lp = [0.0f32; 3];
        log_softmax(&logits, &mut lp);
        for (got, p) in lp.iter().zip([1.0f64 / 8.0, 2.0 / 8.0, 5.0 / 8.0]) {
            assert!((*got as f64 - p.ln()).abs() < 1e-6, "{got} vs {}", p.ln());
        }
        // Shifting the logits changes nothing; large logits do not overflow.
        let shifted = logits.map(|z| z + 1000.0);
        assert!((cross_entropy(&shifted, 2) - cross_entropy(&logits, 2)).abs() < 1e-4);
    }

    #[test]
    fn kl_matches_a_hand_computation() {
        // p = (1/2, 1/2), q = (1/4, 3/4): KL = 1/2 ln 2 + 1/2 ln(2/3).
        let p = [0.5f32.ln(), 0.5f32.ln()];
        let q = [0.25f32.ln(), 0.75f32.ln()];
        let want = 0.5 * 2f64.ln() + 0.5 * (2.0f64 / 3.0).ln();
        assert!((kl_divergence(&p, &q) - want).abs() < 1e-7);
        assert_eq!(kl_divergence(&p, &p), 0.0);
        // A zero-probability term of p contributes nothing.
        let p0 = [0.0f32, f32::NEG_INFINITY];
        let ln2 = kl_divergence(&p0, &[0.5f32.ln(), 0.5f32.ln()]);
        assert!((ln2 - 2f64.ln()).abs() < 1e-7, "{ln2}");
    }

    #[test]
    fn scores_follow_their_definitions() {
        let sums = LossSums {
            positions: 4,
            ce_clean: 8.0,
            ce_sae: 10.0,
            ce_zero: 16.0,
            kl_sae: 1.0,
            kl_zero: 4.0,
        };
        let hook = sae_lm::Hook::new(0, sae_lm::HookPoint::ResidPost);
        let m = sums.metrics("m", &Site::at(hook));
        assert_eq!(
            (m.hook.as_str(), m.hook_out.as_deref()),
            ("blocks.0.hook_resid_post", None)
        );
        assert_eq!((m.ce_clean, m.ce_sae, m.ce_zero), (2.0, 2.5, 4.0));
        assert_eq!(m.ce_loss_recovered, Some(0.75));
        assert_eq!(m.delta_lm_loss, 0.5);
        assert_eq!(m.kl_div_score, Some(0.75));
        let flat = LossSums {
            ce_zero: 8.0,
            kl_zero: 0.0,
            ..sums
        };
        let out = sae_lm::Hook::new(1, sae_lm::HookPoint::MlpOut);
        let m = flat.metrics("m", &Site::between(hook, out).unwrap());
        assert_eq!(m.hook_out.as_deref(), Some("blocks.1.hook_mlp_out"));
        assert_eq!((m.ce_loss_recovered, m.kl_div_score), (None, None));
    }
}
