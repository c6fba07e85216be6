//! Hand-derived backward for the TopK family (TopK, BatchTopK, both with AuxK). Only the encoder
//! matmul is dense; decoding and every gradient touch the k active latents of each row.
//!
//! With g_r = dL/dx_hat_r = -2 e_r / V (V = total variance of x) and S_r the active latents of row r:
//!   dW_dec[j] = sum_{r: j in S_r} z_rj g_r,   dz_rj = g_r . W_dec[j] (j in S_r),
//!   db_enc[j] = sum_r dz_rj,   dW_enc[:, j] = sum_r (x_r - b_dec) dz_rj,
//!   db_dec = sum_r g_r - W_enc db_enc   (b_dec enters the decoder and, negated, the encoder).
//! AuxK adds the same terms with h_r = -2 coef (e_r - e_hat_r) / V_e over the dead latents A_r.

use crate::config::ArchConfig;
use crate::error::Result;
use crate::params::Params;
use crate::select::{batchtopk_mask, topk_row};
use crate::step::{total_variance, Step, StepContext, StepOutput};

/// Sparse step for [`ArchConfig::TopK`] and [`ArchConfig::BatchTopK`].
#[derive(Clone, Debug)]
pub struct SparseTopKStep {
    /// Architecture (TopK or BatchTopK).
    pub arch: ArchConfig,
    /// AuxK latents.
    pub k_aux: usize,
}

/// Active latents of every row: `idx[off[r]..off[r+1]]` with values `val[..]`.
struct Sparse {
    off: Vec<usize>,
    idx: Vec<u32>,
    val: Vec<f32>,
}

impl Sparse {
    fn from_rows(
        z: &[f32],
        d_sae: usize,
        mut pick: impl FnMut(usize, &[f32], &mut Vec<u32>),
    ) -> Self {
        let rows = z.len() / d_sae;
        let mut s = Sparse {
            off: vec![0],
            idx: Vec::new(),
            val: Vec::new(),
        };
        let mut buf = Vec::new();
        for r in 0..rows {
            let row = &z[r * d_sae..(r + 1) * d_sae];
            pick(r, row, &mut buf);
            for &j in &buf {
                s.idx.push(j);
                s.val.push(row[j as usize]);
            }
            s.off.push(s.idx.len());
        }
        s
    }

    fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.off[r], self.off[r + 1]);
        (&self.idx[a..b], &self.val[a..b])
    }

    /// out_r = sum_j val_rj W_dec[j] (+ bias when given). out: [rows, d_in].
    fn decode(&self, w_dec: &[f32], d_in: usize, bias: Option<&[f32]>) -> Vec<f32> {
        let rows = self.off.len() - 1;
        let mut out = vec![0f32; rows * d_in];
        for (r, o) in out.chunks_mut(d_in).enumerate() {
            if let Some(b) = bias {
                o.copy_from_slice(b);
            }
            let (idx, val) = self.row(r);
            for (&j, &a) in idx.iter().zip(val) {
                let w = &w_dec[j as usize * d_in..(j as usize + 1) * d_in];
                o.iter_mut().zip(w).for_each(|(o, w)| *o += a * w);
            }
        }
        out
    }

    /// Backward of `decode` for upstream gradient `g` [rows, d_in]: adds to dW_dec and writes
    /// dz for every active entry (same layout as `val`), accumulated into `dz`.
    fn backward(&self, g: &[f32], w_dec: &[f32], d_in: usize, dw_dec: &mut [f32], dz: &mut [f32]) {
        for (r, gr) in g.chunks(d_in).enumerate() {
            let (idx, val) = self.row(r);
            let base = self.off[r];
            for (n, (&j, &a)) in idx.iter().zip(val).enumerate() {
                let j = j as usize;
                let w = &w_dec[j * d_in..(j + 1) * d_in];
                dz[base + n] += w.iter().zip(gr).map(|(w, g)| w * g).sum::<f32>();
                let dw = &mut dw_dec[j * d_in..(j + 1) * d_in];
                dw.iter_mut().zip(gr).for_each(|(d, g)| *d += a * g);
            }
        }
    }

    /// Adds the encoder gradients of the sparse dz: dW_enc^T[j] += xc_r dz_rj, db_enc[j] += dz_rj.
    fn encoder_grads(
        &self,
        dz: &[f32],
        xc: &[f32],
        d_in: usize,
        dw_enc_t: &mut [f32],
        db_enc: &mut [f32],
    ) {
        for (r, xr) in xc.chunks(d_in).enumerate() {
            let (idx, _) = self.row(r);
            let base = self.off[r];
            for (n, &j) in idx.iter().enumerate() {
                let j = j as usize;
                let g = dz[base + n];
                db_enc[j] += g;
                let dw = &mut dw_enc_t[j * d_in..(j + 1) * d_in];
                dw.iter_mut().zip(xr).for_each(|(d, x)| *d += g * x);
            }
        }
    }
}

impl Step for SparseTopKStep {
    fn run(&self, x: &[f32], p: &Params, ctx: &StepContext<'_>) -> Result<StepOutput> {
        let (d_in, d_sae) = (p.d_in, p.d_sae);
        let b = x.len() / d_in;
        // Dense encoder: z = (x - b_dec) W_enc + b_enc.
        let (xc, z) = crate::kernels::pre_acts(x, p);
        let mut min_kept = None;
        let (act, auxk_coef) = match &self.arch {
            ArchConfig::TopK { k, auxk_coef, .. } => (
                Sparse::from_rows(&z, d_sae, |_, row, out| topk_row(row, *k, out)),
                *auxk_coef,
            ),
            ArchConfig::BatchTopK { k, auxk_coef, .. } => {
                let (mask, t) = batchtopk_mask(&z, k * b);
                min_kept = t;
                let sp = Sparse::from_rows(&z, d_sae, |r, _, out| {
                    out.clear();
                    let m = &mask[r * d_sae..(r + 1) * d_sae];
                    out.extend((0..d_sae as u32).filter(|&j| m[j as usize] != 0.0));
                });
                (sp, *auxk_coef)
            }
            other => {
                return Err(crate::error::TrainError::Invalid(format!(
                    "the sparse step handles the TopK family, not {}",
                    other.name()
                )))
            }
        };
        let x_hat = act.decode(&p.w_dec, d_in, Some(&p.b_dec));
        let e: Vec<f32> = x.iter().zip(&x_hat).map(|(a, b)| a - b).collect();
        let var_x = total_variance(x, d_in).max(1e-30);
        let sse: f64 = e.iter().map(|v| (*v as f64).powi(2)).sum();
        let recon = sse / var_x;
        let mut grads = p.zeros_like();
        let mut dw_enc_t = vec![0f32; d_sae * d_in];
        // Main reconstruction: g = -2 e / V.
        let gscale = (-2.0 / var_x) as f32;
        let g: Vec<f32> = e.iter().map(|v| v * gscale).collect();
        let mut dz = vec![0f32; act.val.len()];
        act.backward(&g, &p.w_dec, d_in, &mut grads.w_dec, &mut dz);
        act.encoder_grads(&dz, &xc, d_in, &mut dw_enc_t, &mut grads.b_enc);
        for gr in g.chunks(d_in) {
            grads.b_dec.iter_mut().zip(gr).for_each(|(d, g)| *d += g);
        }
        // AuxK over dead latents.
        let mut aux = 0.0;
        let dead_idx: Vec<u32> = (0..d_sae as u32)
            .filter(|&j| ctx.dead[j as usize])
            .collect();
        if !dead_idx.is_empty() && self.k_aux > 0 {
            let mut buf = vec![0f32; dead_idx.len()];
            let auxs = Sparse::from_rows(&z, d_sae, |_, row, out| {
                for (b, &j) in buf.iter_mut().zip(&dead_idx) {
                    *b = row[j as usize];
                }
                topk_row(&buf, self.k_aux, out);
                out.iter_mut().for_each(|i| *i = dead_idx[*i as usize]);
            });
            if !auxs.idx.is_empty() {
                let e_hat = auxs.decode(&p.w_dec, d_in, None);
                let var_e = total_variance(&e, d_in).max(1e-30);
                let diff: Vec<f32> = e.iter().zip(&e_hat).map(|(a, b)| a - b).collect();
                aux = diff.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / var_e;
                let hscale = (-2.0 * auxk_coef / var_e) as f32;
                let h: Vec<f32> = diff.iter().map(|v| v * hscale).collect();
                let mut dza = vec![0f32; auxs.val.len()];
                auxs.backward(&h, &p.w_dec, d_in, &mut grads.w_dec, &mut dza);
                auxs.encoder_grads(&dza, &xc, d_in, &mut dw_enc_t, &mut grads.b_enc);
            }
        }
        // db_dec (encoder path) = -W_enc db_enc; dW_enc = (dW_enc^T)^T.
        for i in 0..d_in {
            let w = &p.w_enc[i * d_sae..(i + 1) * d_sae];
            grads.b_dec[i] -= w.iter().zip(&grads.b_enc).map(|(a, b)| a * b).sum::<f32>();
            for j in 0..d_sae {
                grads.w_enc[i * d_sae + j] = dw_enc_t[j * d_in + i];
            }
        }
        let mut fired = vec![0u32; d_sae];
        act.idx.iter().for_each(|&j| fired[j as usize] += 1);
        Ok(StepOutput {
            loss: recon + auxk_coef * aux,
            recon,
            aux,
            fvu: recon,
            l0: act.idx.len() as f64 / b as f64,
            fired,
            min_kept,
            grads,
        })
    }
}
