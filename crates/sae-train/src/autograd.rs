//! Reference training step for every architecture: the forward pass on candle tensors, gradients by
//! candle's autograd. Masks (which latents fire) come from [`crate::select`] and enter as constants.
//!
//! Shapes: x [B, d_in]; z = (x - b_dec) W_enc + b_enc [B, d_sae]; f [B, d_sae]; x_hat = f W_dec + b_dec.
//! A transcoder: z = x W_enc + b_enc; y_hat = f W_dec + b_dec (+ x W_skip) [B, d_out] against the
//! target y of the context.

use candle_core::{Device, Tensor, Var};

use crate::config::{ArchConfig, Prefixes};
use crate::error::{Result, TrainError};
use crate::params::Params;
use crate::select::{auxk_mask, batchtopk_mask, topk_mask};
use crate::step::{total_variance, Grads, Step, StepContext, StepOutput};

/// Autograd step for one architecture.
#[derive(Clone, Debug)]
pub struct AutogradStep {
    /// Architecture (and its settings).
    pub arch: ArchConfig,
    /// AuxK latents (TopK family).
    pub k_aux: usize,
}

struct Vars {
    w_enc: Var,
    b_enc: Var,
    w_dec: Var,
    b_dec: Var,
    log_threshold: Option<Var>,
    w_skip: Option<Var>,
}

fn vars(p: &Params) -> Result<Vars> {
    let dev = Device::Cpu;
    Ok(Vars {
        w_enc: Var::from_slice(&p.w_enc, (p.d_in, p.d_sae), &dev)?,
        b_enc: Var::from_slice(&p.b_enc, p.d_sae, &dev)?,
        w_dec: Var::from_slice(&p.w_dec, (p.d_sae, p.d_out), &dev)?,
        b_dec: Var::from_slice(&p.b_dec, p.d_out, &dev)?,
        log_threshold: match &p.log_threshold {
            Some(t) => Some(Var::from_slice(t, p.d_sae, &dev)?),
            None => None,
        },
        w_skip: match &p.w_skip {
            Some(t) => Some(Var::from_slice(t, (p.d_in, p.d_out), &dev)?),
            None => None,
        },
    })
}

fn flat(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

fn grad_of(grads: &candle_core::backprop::GradStore, v: &Var, len: usize) -> Result<Vec<f32>> {
    match grads.get(v.as_tensor()) {
        Some(g) => flat(g),
        None => Ok(vec![0.0; len]),
    }
}

/// fired[j] = number of rows where mask[r, j] != 0.
fn fired_counts(mask: &[f32], d_sae: usize) -> Vec<u32> {
    let mut fired = vec![0u32; d_sae];
    for row in mask.chunks(d_sae) {
        for (c, m) in fired.iter_mut().zip(row) {
            *c += (*m != 0.0) as u32;
        }
    }
    fired
}

impl Step for AutogradStep {
    fn run(
        &mut self,
        x: &[f32],
        p: &Params,
        ctx: &StepContext<'_>,
        grads_out: &mut Grads,
    ) -> Result<StepOutput> {
        let dev = Device::Cpu;
        let (d_in, d_sae, d_out) = (p.d_in, p.d_sae, p.d_out);
        let b = x.len() / d_in;
        let v = vars(p)?;
        let xt = Tensor::from_slice(x, (b, d_in), &dev)?;
        let y = ctx.target.unwrap_or(x);
        let yt = Tensor::from_slice(y, (b, d_out), &dev)?;
        let xc = match p.transcoder {
            true => xt.clone(),
            false => xt.broadcast_sub(v.b_dec.as_tensor())?,
        };
        let z = xc
            .matmul(v.w_enc.as_tensor())?
            .broadcast_add(v.b_enc.as_tensor())?;
        let zv = flat(&z)?;
        let var_x = total_variance(y, d_out).max(1e-30);
        let mut min_kept = None;
        let (f, mask, penalty) = match &self.arch {
            ArchConfig::TopK { .. }
            | ArchConfig::BatchTopK { .. }
            | ArchConfig::MatryoshkaBatchTopK { .. } => {
                let k = self.arch.topk_family().map_or(0, |t| t.0);
                let mask = if let ArchConfig::TopK { .. } = self.arch {
                    topk_mask(&zv, d_sae, k)
                } else {
                    let (m, t) = batchtopk_mask(&zv, k * b);
                    min_kept = t;
                    m
                };
                let mt = Tensor::from_slice(&mask, (b, d_sae), &dev)?;
                (z.mul(&mt)?, mask, None)
            }
            ArchConfig::ReluL1 { .. } => {
                let f = z.relu()?;
                let mask: Vec<f32> = zv.iter().map(|v| (*v > 0.0) as u8 as f32).collect();
                let norms = v.w_dec.as_tensor().sqr()?.sum(1)?.sqrt()?;
                let l1 = f.sum(0)?.mul(&norms)?.sum_all()?;
                let pen = (l1 * (ctx.sparsity_coef / b as f64))?;
                (f, mask, Some(pen))
            }
            ArchConfig::JumpRelu {
                bandwidth,
                target_l0,
                pre_act_ste,
                ..
            } => {
                let lt = v.log_threshold.as_ref().ok_or_else(|| {
                    TrainError::Invalid("jumprelu parameters lack thresholds".into())
                })?;
                let theta_t = lt.as_tensor().exp()?;
                let theta = flat(&theta_t)?;
                let eps = *bandwidth as f32;
                let mut mask = vec![0f32; zv.len()];
                let mut g_f = vec![0f32; zv.len()];
                let mut g_l0 = vec![0f32; d_sae];
                for (i, &zi) in zv.iter().enumerate() {
                    let j = i % d_sae;
                    mask[i] = (zi > theta[j]) as u8 as f32;
                    // Rectangle kernel K(u) = 1{|u| < 1/2}, u = (z - theta) / eps.
                    if ((zi - theta[j]) / eps).abs() < 0.5 {
                        g_f[i] = -theta[j] / eps;
                        g_l0[j] -= 1.0 / eps;
                    }
                }
                let theta_b = theta_t.broadcast_as((b, d_sae))?;
                let delta = theta_b.sub(&theta_b.detach())?;
                let gf = Tensor::from_slice(&g_f, (b, d_sae), &dev)?;
                let mt = Tensor::from_slice(&mask, (b, d_sae), &dev)?;
                let mut f = (z.mul(&mt)? + delta.mul(&gf)?)?;
                // L0 per row with the straight-through gradient for theta.
                let l0_val = mask.iter().sum::<f32>() as f64 / b as f64;
                let gl = Tensor::from_slice(&g_l0, d_sae, &dev)?;
                let mut l0_ste = (theta_t.sub(&theta_t.detach())?.mul(&gl)?.sum_all()? / b as f64)?;
                if *pre_act_ste {
                    // The jump seen from z: dH/dz = K / eps (= -dH/dtheta).
                    let gz = Tensor::from_slice(&g_f, (b, d_sae), &dev)?.neg()?;
                    let dz = z.sub(&z.detach())?;
                    f = (f + dz.mul(&gz)?)?;
                    let win: Vec<f32> = g_f.iter().map(|g| (*g != 0.0) as u8 as f32).collect();
                    let kw = Tensor::from_slice(&win, (b, d_sae), &dev)?;
                    l0_ste = (l0_ste + (dz.mul(&kw)?.sum_all()? / (eps as f64 * b as f64))?)?;
                }
                let l0_ste = (l0_ste + l0_val)?;
                let pen = match target_l0 {
                    Some(t) => (((l0_ste / *t)? - 1.0)?.sqr()? * ctx.sparsity_coef)?,
                    None => (l0_ste * ctx.sparsity_coef)?,
                };
                (f, mask, Some(pen))
            }
        };
        let mut x_hat = f
            .matmul(v.w_dec.as_tensor())?
            .broadcast_add(v.b_dec.as_tensor())?;
        let skip = match &v.w_skip {
            Some(w) => Some(xt.matmul(w.as_tensor())?),
            None => None,
        };
        if let Some(s) = &skip {
            x_hat = (x_hat + s)?;
        }
        let err = yt.sub(&x_hat)?;
        let sse = err.sqr()?.sum_all()?;
        let sse_v = sse.to_scalar::<f32>()? as f64;
        let (recon, mut loss, mut aux) = match &self.arch {
            arch if arch.topk_family().is_some() => {
                let r = (sse / var_x)?;
                (r.to_scalar::<f32>()? as f64, r, 0.0)
            }
            _ => {
                let r = (sse / b as f64)?;
                (r.to_scalar::<f32>()? as f64, r, 0.0)
            }
        };
        if let ArchConfig::MatryoshkaBatchTopK {
            group_fractions,
            group_weights,
            ..
        } = &self.arch
        {
            // Each inner prefix reconstructs on its own: f[:, :w] W_dec[:w] + b_dec.
            let pre = Prefixes::new(group_fractions, group_weights.as_deref(), d_sae)?;
            let weights = ctx.prefix_weights.unwrap_or(&pre.weights);
            for (&w, &wt) in pre.widths.iter().zip(weights) {
                let mut xh = f
                    .narrow(1, 0, w)?
                    .matmul(&v.w_dec.as_tensor().narrow(0, 0, w)?)?
                    .broadcast_add(v.b_dec.as_tensor())?;
                if let Some(s) = &skip {
                    xh = (xh + s)?;
                }
                let l = (yt.sub(&xh)?.sqr()?.sum_all()? * (wt / var_x))?;
                loss = (loss + l)?;
            }
        }
        if let Some(pen) = penalty {
            aux = pen.to_scalar::<f32>()? as f64;
            loss = (loss + pen)?;
        }
        if let Some((_, auxk_coef)) = self.arch.topk_family() {
            let am = auxk_mask(&zv, d_sae, ctx.dead, self.k_aux);
            if am.iter().any(|m| *m != 0.0) {
                let e = err.detach();
                let ev = flat(&e)?;
                let var_e = total_variance(&ev, d_out).max(1e-30);
                let amt = Tensor::from_slice(&am, (b, d_sae), &dev)?;
                let e_hat = z.mul(&amt)?.matmul(v.w_dec.as_tensor())?;
                let aux_t = ((e - e_hat)?.sqr()?.sum_all()? / var_e)?;
                aux = aux_t.to_scalar::<f32>()? as f64;
                loss = (loss + (aux_t * auxk_coef)?)?;
            }
        }
        let loss_v = loss.to_scalar::<f32>()? as f64;
        let g = loss.backward()?;
        let fired = fired_counts(&mask, d_sae);
        let l0 = fired.iter().map(|c| *c as f64).sum::<f64>() / b as f64;
        let grads = Params {
            d_in,
            d_sae,
            d_out,
            transcoder: p.transcoder,
            w_enc: grad_of(&g, &v.w_enc, p.w_enc.len())?,
            b_enc: grad_of(&g, &v.b_enc, d_sae)?,
            w_dec: grad_of(&g, &v.w_dec, p.w_dec.len())?,
            b_dec: grad_of(&g, &v.b_dec, d_out)?,
            log_threshold: match &v.log_threshold {
                Some(t) => Some(grad_of(&g, t, d_sae)?),
                None => None,
            },
            w_skip: match &v.w_skip {
                Some(t) => Some(grad_of(&g, t, d_in * d_out)?),
                None => None,
            },
        };
        *grads_out = Grads::from_params(&grads);
        Ok(StepOutput {
            loss: loss_v,
            recon,
            aux,
            fvu: sse_v / var_x,
            l0,
            fired,
            min_kept,
        })
    }
}
