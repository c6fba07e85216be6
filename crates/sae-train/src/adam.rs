//! Adam, written out so that its whole state (moments and step count) can be checkpointed exactly.

use crate::params::Params;

/// Adam hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
}

/// Adam state: first and second moments shaped like the parameters, and the number of updates made.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    /// Hyper-parameters.
    pub cfg: AdamConfig,
    /// First moments.
    pub m: Params,
    /// Second moments.
    pub v: Params,
    /// Updates made so far.
    pub t: u64,
}

impl Adam {
    /// Fresh state for `params`.
    pub fn new(cfg: AdamConfig, params: &Params) -> Adam {
        Adam {
            cfg,
            m: params.zeros_like(),
            v: params.zeros_like(),
            t: 0,
        }
    }

    /// One update with learning rate `lr`:
    /// m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).
    pub fn step(&mut self, params: &mut Params, grads: &Params, lr: f64) {
        self.t += 1;
        let AdamConfig { beta1, beta2, eps } = self.cfg;
        let bc1 = 1.0 - beta1.powi(self.t as i32);
        let bc2 = 1.0 - beta2.powi(self.t as i32);
        let (b1, b2) = (beta1 as f32, beta2 as f32);
        let step_size = (lr / bc1) as f32;
        let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
        let eps = eps as f32;
        let ps = params.buffers_mut();
        let gs = grads.buffers();
        let ms = self.m.buffers_mut();
        let vs = self.v.buffers_mut();
        for (((p, g), m), v) in ps.into_iter().zip(gs).zip(ms).zip(vs) {
            for i in 0..p.1.len() {
                let gi = g.1[i];
                let mi = b1 * m.1[i] + (1.0 - b1) * gi;
                let vi = b2 * v.1[i] + (1.0 - b2) * gi * gi;
                m.1[i] = mi;
                v.1[i] = vi;
                p.1[i] -= step_size * mi / (vi.sqrt() * inv_sqrt_bc2 + eps);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(vals: [f32; 4]) -> Params {
        Params {
            d_in: 1,
            d_sae: 1,
            d_out: 1,
            transcoder: false,
            w_enc: vec![vals[0]],
            b_enc: vec![vals[1]],
            w_dec: vec![vals[2]],
            b_dec: vec![vals[3]],
            log_threshold: None,
            w_skip: None,
        }
    }

    #[test]
    fn one_and_two_steps_match_hand_computation() {
        let cfg = AdamConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        let mut p = tiny([1.0, 2.0, -1.0, 0.0]);
        let g = tiny([0.5, -2.0, 0.0, 1e-3]);
        let mut adam = Adam::new(cfg, &p);
        adam.step(&mut p, &g, 0.1);
        // Step 1: m_hat = g, v_hat = g^2, update = lr * g / (|g| + eps) = lr * sign(g) (up to eps).
        assert!((p.w_enc[0] - 0.9).abs() < 1e-6);
        assert!((p.b_enc[0] - 2.1).abs() < 1e-6);
        assert_eq!(p.w_dec[0], -1.0);
        assert!(
            (p.b_dec[0] + 0.1 * 1e-3 / (1e-3 + 1e-8)).abs() < 1e-6,
            "{}",
            p.b_dec[0]
        );
        assert!((adam.m.w_enc[0] - 0.05).abs() < 1e-7);
        assert!((adam.v.w_enc[0] / 0.00025 - 1.0).abs() < 1e-4);
        // Step 2 with gradient 1.0 on w_enc: m = 0.045 + 0.1 = 0.145, v = 0.00024975 + 0.001 = 0.00124975;
        // m_hat = 0.145 / 0.19, v_hat = 0.00124975 / 0.001999.
        let g2 = tiny([1.0, 0.0, 0.0, 0.0]);
        adam.step(&mut p, &g2, 0.1);
        let m_hat = 0.145f64 / 0.19;
        let v_hat = 0.00124975f64 / (1.0 - 0.999f64 * 0.999);
        let want = 0.9 - 0.1 * m_hat / (v_hat.sqrt() + 1e-8);
        assert!(
            (p.w_enc[0] as f64 - want).abs() < 1e-5,
            "{} vs {want}",
            p.w_enc[0]
        );
    }
}
