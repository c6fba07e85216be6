//! Hand-derived backward for ReLU-L1 and JumpReLU with dense gemm products (the activations of these
//! architectures are not sparse early in training). Checked against [`crate::autograd`].
//!
//! Common: G = dL/dx_hat = -2 e / B, dF = G W_dec^T, dW_dec = f^T G, dW_enc = xc^T dz,
//! db_enc = sum_r dz_r, db_dec = sum_r G_r - W_enc db_enc.
//! ReLU-L1 (loss = sum ||e||^2 / B + lambda / B sum_rj f_rj n_j, n_j = ||W_dec[j]||):
//!   dz = (dF + lambda n / B) * [z > 0],  dW_dec[j] += lambda / B (sum_r f_rj) W_dec[j] / n_j.
//! JumpReLU (f = z [z > theta], loss = sum ||e||^2 / B + P(L0)), rectangle kernel
//! K_rj = [|z_rj - theta_j| < eps / 2]:  dz = dF * [z > theta],
//!   dtheta_j = sum_r K_rj (-(theta_j / eps) dF_rj - P'(L0) / (eps B)),  dlog_theta = theta dtheta;
//!   with the pre-activation estimator (`pre_act_ste`) the jump's gradient reaches z as well, with
//!   the opposite sign: dz_rj += K_rj ((theta_j / eps) dF_rj + P'(L0) / (eps B)).

use crate::config::ArchConfig;
use crate::error::{Result, TrainError};
use crate::kernels::{matmul_into, matmul_tn_into, pre_acts, Mat};
use crate::params::Params;
use crate::step::{total_variance, Grads, Step, StepContext, StepOutput};

/// Dense hand-derived step for [`ArchConfig::ReluL1`] and [`ArchConfig::JumpRelu`].
#[derive(Clone, Debug)]
pub struct DenseStep {
    /// Architecture (ReLU-L1 or JumpReLU).
    pub arch: ArchConfig,
}

impl Step for DenseStep {
    fn run(
        &mut self,
        x: &[f32],
        p: &Params,
        ctx: &StepContext<'_>,
        grads: &mut Grads,
    ) -> Result<StepOutput> {
        let (xc, z) = pre_acts(x, p);
        self.run_on(x, &xc, z, p, ctx, grads)
    }
}

impl DenseStep {
    /// The step from the encoder's output already computed: `xc` = x - b_dec and `z` = xc W_enc +
    /// b_enc ([B, d_sae], consumed).
    pub fn run_on(
        &self,
        x: &[f32],
        xc: &[f32],
        mut z: Vec<f32>,
        p: &Params,
        ctx: &StepContext<'_>,
        grads: &mut Grads,
    ) -> Result<StepOutput> {
        let (d_in, d_sae) = (p.d_in, p.d_sae);
        let b = x.len() / d_in;
        let bf = b as f32;
        let theta: Option<Vec<f32>> = p
            .log_threshold
            .as_ref()
            .map(|lt| lt.iter().map(|v| v.exp()).collect());
        let jump = matches!(self.arch, ArchConfig::JumpRelu { .. });
        if jump != theta.is_some()
            || !matches!(
                self.arch,
                ArchConfig::ReluL1 { .. } | ArchConfig::JumpRelu { .. }
            )
        {
            return Err(TrainError::Invalid(format!(
                "the dense step handles relu-l1 and jumprelu (with thresholds), not {}",
                self.arch.name()
            )));
        }
        // f in place of a copy of z; keep z for the JumpReLU kernel.
        let mut f = z.clone();
        match &theta {
            Some(t) => f.chunks_mut(d_sae).for_each(|r| {
                r.iter_mut().zip(t).for_each(|(v, t)| {
                    if *v <= *t {
                        *v = 0.0
                    }
                })
            }),
            None => f.iter_mut().for_each(|v| *v = v.max(0.0)),
        }
        // The reconstruction target (a transcoder's y, width d_out) and the decoder's width.
        let (y, d_x) = (ctx.target.unwrap_or(x), d_in);
        let d_in = p.d_out;
        let mut x_hat: Vec<f32> = Vec::with_capacity(b * d_in);
        for _ in 0..b {
            x_hat.extend_from_slice(&p.b_dec);
        }
        matmul_into(
            &mut x_hat,
            Mat::new(&f, b, d_sae),
            Mat::new(&p.w_dec, d_sae, d_in),
            true,
        );
        if let Some(w) = &p.w_skip {
            matmul_into(
                &mut x_hat,
                Mat::new(x, b, d_x),
                Mat::new(w, d_x, d_in),
                true,
            );
        }
        let e: Vec<f32> = y.iter().zip(&x_hat).map(|(a, c)| a - c).collect();
        let sse: f64 = e.iter().map(|v| (*v as f64).powi(2)).sum();
        let g: Vec<f32> = e.iter().map(|v| -2.0 * v / bf).collect();
        let mut df = vec![0f32; b * d_sae];
        matmul_into(
            &mut df,
            Mat::new(&g, b, d_in),
            Mat::t(&p.w_dec, d_sae, d_in),
            false,
        );
        grads.b_enc.iter_mut().for_each(|v| *v = 0.0);
        grads.b_dec.iter_mut().for_each(|v| *v = 0.0);
        if let Some(t) = grads.log_threshold.as_mut() {
            t.iter_mut().for_each(|v| *v = 0.0);
        }
        let mut scratch = Vec::new();
        matmul_tn_into(&mut grads.w_dec, &f, &g, b, &mut scratch);
        let mut fired = vec![0u32; d_sae];
        let mut active = 0usize;
        for r in f.chunks(d_sae) {
            for (c, v) in fired.iter_mut().zip(r) {
                *c += (*v != 0.0) as u32;
            }
        }
        fired.iter().for_each(|c| active += *c as usize);
        let l0 = active as f64 / b as f64;
        let penalty;
        // dz overwrites z (z is no longer needed afterwards except by the JumpReLU kernel below).
        match (&self.arch, &theta) {
            (ArchConfig::ReluL1 { .. }, None) => {
                let lam = ctx.sparsity_coef as f32;
                let norms: Vec<f32> = p
                    .w_dec
                    .chunks(d_in)
                    .map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt())
                    .collect();
                let mut fsum = vec![0f32; d_sae];
                for (fr, dr) in f.chunks(d_sae).zip(df.chunks_mut(d_sae)) {
                    for j in 0..d_sae {
                        fsum[j] += fr[j];
                        dr[j] = if fr[j] > 0.0 {
                            dr[j] + lam * norms[j] / bf
                        } else {
                            0.0
                        };
                    }
                }
                penalty = ctx.sparsity_coef
                    * fsum
                        .iter()
                        .zip(&norms)
                        .map(|(s, n)| (*s as f64) * (*n as f64))
                        .sum::<f64>()
                    / b as f64;
                for j in 0..d_sae {
                    if norms[j] > 0.0 && fsum[j] > 0.0 {
                        let c = lam / bf * fsum[j] / norms[j];
                        let (w, dw) = (
                            &p.w_dec[j * d_in..(j + 1) * d_in],
                            &mut grads.w_dec[j * d_in..(j + 1) * d_in],
                        );
                        dw.iter_mut().zip(w).for_each(|(d, w)| *d += c * w);
                    }
                }
            }
            (
                ArchConfig::JumpRelu {
                    bandwidth,
                    target_l0,
                    pre_act_ste,
                    ..
                },
                Some(t),
            ) => {
                let eps = *bandwidth as f32;
                let (pen, dpen) = l0_penalty(*target_l0, ctx.sparsity_coef, l0);
                penalty = pen;
                let dpen = dpen as f32;
                let lt_grad = grads.log_threshold.get_or_insert_with(|| vec![0.0; d_sae]);
                for (zr, dr) in z.chunks_mut(d_sae).zip(df.chunks_mut(d_sae)) {
                    for j in 0..d_sae {
                        let mut w = 0.0;
                        if ((zr[j] - t[j]) / eps).abs() < 0.5 {
                            w = -(t[j] / eps) * dr[j] - dpen / (eps * bf);
                            lt_grad[j] += w;
                        }
                        if zr[j] <= t[j] {
                            dr[j] = 0.0;
                        }
                        if *pre_act_ste {
                            dr[j] -= w;
                        }
                    }
                }
                lt_grad.iter_mut().zip(t).for_each(|(gv, t)| *gv *= t);
            }
            _ => unreachable!("checked above"),
        }
        drop(z);
        let dz = df;
        // dW_enc^T = dz^T xc, latent-major.
        matmul_tn_into(&mut grads.w_enc_t, &dz, xc, b, &mut scratch);
        if let Some(gs) = grads.w_skip.as_mut() {
            matmul_into(gs, Mat::t(x, b, d_x), Mat::new(&g, b, d_in), false);
        }
        for r in dz.chunks(d_sae) {
            grads.b_enc.iter_mut().zip(r).for_each(|(a, v)| *a += v);
        }
        for gr in g.chunks(d_in) {
            grads.b_dec.iter_mut().zip(gr).for_each(|(a, v)| *a += v);
        }
        // b_dec also enters an autoencoder's encoder (negated); a transcoder's input is uncentred.
        for i in 0..d_in * (!p.transcoder) as usize {
            let w = &p.w_enc[i * d_sae..(i + 1) * d_sae];
            grads.b_dec[i] -= w.iter().zip(&grads.b_enc).map(|(a, c)| a * c).sum::<f32>();
        }
        let recon = sse / b as f64;
        Ok(StepOutput {
            loss: recon + penalty,
            recon,
            aux: penalty,
            fvu: sse / total_variance(y, d_in).max(1e-30),
            l0,
            fired,
            min_kept: None,
        })
    }
}

/// JumpReLU's L0 penalty and its derivative with respect to L0: coef (L0 / target - 1)^2 towards a
/// target, else coef L0.
pub(crate) fn l0_penalty(target_l0: Option<f64>, coef: f64, l0: f64) -> (f64, f64) {
    match target_l0 {
        Some(tl) => {
            let u = l0 / tl - 1.0;
            (coef * u * u, coef * 2.0 * u / tl)
        }
        None => (coef * l0, coef),
    }
}
