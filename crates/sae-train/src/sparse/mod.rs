//! Sparse training steps: [`SparseTopKStep`] for the TopK family and [`SparseThresholdStep`] for
//! ReLU-L1 / JumpReLU once their activations are sparse.
//!
//! Hand-derived sparse step for the TopK family (TopK, BatchTopK, both with AuxK). The encoder
//! GEMM is the only dense product; everything after it touches the active latents only, runs on
//! every core, and reuses buffers allocated at the first step.
//!
//! With g_r = dL/dx_hat_r = -2 e_r / V (V = total variance of x) and S_r the active latents of row r:
//!   dW_dec[j] = sum_{r: j in S_r} z_rj g_r,   dz_rj = g_r . W_dec[j] (j in S_r),
//!   db_enc[j] = sum_r dz_rj,   dW_enc[:, j] = sum_r (x_r - b_dec) dz_rj,
//!   db_dec = sum_r g_r - W_enc db_enc   (b_dec enters the decoder and, negated, the encoder).
//! AuxK adds the same terms with h_r = -2 coef (e_r - e_hat_r) / V_e over the dead latents A_r
//! (e detached), e_hat_r = sum_{j in A_r} z_rj W_dec[j].

mod auxk;
mod batch;
mod encode;
mod jump;
mod matryoshka;
mod passes;
mod row_topk;
mod select;
mod threshold;
mod threshold_step;

use rayon::prelude::*;

use crate::config::{ArchConfig, Prefixes};
use crate::error::Result;
use crate::kernels::{matmul_into, Mat};
use crate::params::Params;
use crate::step::{Grads, Step, StepContext, StepOutput};
use crate::vecops::{dot, simd_dispatch};
pub use auxk::AuxPath;
use auxk::{DenseAux, DenseAuxIo};
use matryoshka::PrefixInputs;
use passes::{ByLatent, Part, RowInputs};
pub use select::RowSets;
use select::SelectScratch;
pub use threshold_step::{DensityPath, SparseThresholdStep, DENSE_DENSITY};

/// Sparse step for [`ArchConfig::TopK`], [`ArchConfig::BatchTopK`] and
/// [`ArchConfig::MatryoshkaBatchTopK`] (its inner prefixes in `matryoshka.rs`).
pub struct SparseTopKStep {
    arch: ArchConfig,
    k_aux: usize,
    /// Matryoshka's nested prefixes (two groups or more), found at the first step.
    prefixes: Option<Prefixes>,
    aux_path: AuxPath,
    ws: Workspace,
}

/// Buffers kept from step to step (sized at the first step, reused afterwards).
#[derive(Default)]
struct Workspace {
    xc: Vec<f32>,
    z: Vec<f32>,
    act: RowSets,
    aux: RowSets,
    sel: SelectScratch,
    /// g rows [B, d_in] followed by the AuxK residual rows [B, d_in].
    gd: Vec<f32>,
    dz: Vec<f32>,
    adz: Vec<f32>,
    by_latent: ByLatent,
    dead: Vec<u32>,
    dense_aux: DenseAux,
    no_rows: RowSets,
    batch: batch::BatchScratch,
    /// Matryoshka: the active entries of the inner groups and their extra dz.
    inner: RowSets,
    idz: Vec<f32>,
    /// Skip transcoder: the target minus the skip path, y - x W_skip [B, d_out].
    ys: Vec<f32>,
    /// Some(kept entries) when the selection filled the dense AuxK block (wherever AuxK may take
    /// the dense path) instead of selecting into `aux`; the dense path always has it.
    aux_all: Option<usize>,
}

impl SparseTopKStep {
    /// A step for `arch` (TopK or BatchTopK) with `k_aux` AuxK latents.
    pub fn new(arch: ArchConfig, k_aux: usize) -> Self {
        SparseTopKStep {
            arch,
            k_aux,
            prefixes: None,
            aux_path: AuxPath::Auto,
            ws: Workspace::default(),
        }
    }

    /// The same step with AuxK forced onto one implementation (tests compare both).
    pub fn with_aux_path(mut self, path: AuxPath) -> Self {
        self.aux_path = path;
        self
    }
}

/// Grows `v` to `n` elements (never shrinks the allocation).
fn ensure<T: Clone + Default>(v: &mut Vec<T>, n: usize) {
    if v.len() != n {
        v.resize(n, T::default());
    }
}

/// db_dec = sum_r g_r - W_enc db_enc (b_dec enters the decoder and, negated, the encoder), with
/// sum_r g_r = gscale sum_r e_r. A transcoder's b_dec enters the decoder only.
fn b_dec_grad(p: &Params, e_sum: &[f64], gscale: f32, grads: &mut Grads) {
    let d_sae = p.d_sae;
    if p.transcoder {
        grads
            .b_dec
            .iter_mut()
            .zip(e_sum)
            .for_each(|(o, e)| *o = (gscale as f64 * e) as f32);
        return;
    }
    let db_enc = &grads.b_enc;
    grads.b_dec.par_iter_mut().enumerate().for_each(|(i, o)| {
        let w = &p.w_enc[i * d_sae..(i + 1) * d_sae];
        *o = (gscale as f64 * e_sum[i]) as f32 - dot_dispatch(w, db_enc);
    });
}

/// Total variance of n rows from their sums: sum ||e_r||^2 - ||sum e_r||^2 / n.
fn variance_from_sums(sse: f64, e_sum: &[f64], n: usize) -> f64 {
    (sse - e_sum.iter().map(|v| v * v).sum::<f64>() / n.max(1) as f64).max(0.0)
}

impl Step for SparseTopKStep {
    fn run(
        &mut self,
        x: &[f32],
        p: &Params,
        ctx: &StepContext<'_>,
        grads: &mut Grads,
    ) -> Result<StepOutput> {
        let (d_in, d_sae, d_out) = (p.d_in, p.d_sae, p.d_out);
        let b = x.len() / d_in;
        let y = ctx.target.unwrap_or(x);
        let var_x = encode::prepare(x, y, p, &mut self.ws.xc, &mut self.ws.ys);
        // `encode_select` borrows the whole step mutably, so the centred rows leave the workspace
        // while it runs and go back after.
        let xc = std::mem::take(&mut self.ws.xc);
        let sel = self.encode_select(if p.transcoder { x } else { &xc }, p, ctx, b);
        self.ws.xc = xc;
        let (auxk_coef, min_kept) = sel?;
        // Matryoshka's weight ramp: this step's inner weights.
        if let (Some(pre), Some(w)) = (self.prefixes.as_mut(), ctx.prefix_weights) {
            pre.weights.clear();
            pre.weights.extend_from_slice(w);
        }
        let ws = &mut self.ws;
        // The encoder's input rows and the rows the decoder reconstructs.
        let xc: &[f32] = if p.transcoder { x } else { &ws.xc };
        let y_rec: &[f32] = if p.w_skip.is_some() { &ws.ys } else { y };
        let d_in = d_out;
        let chosen = ws.aux_all.unwrap_or(ws.aux.nnz());
        let with_aux = chosen > 0;
        let path = self.aux_path.resolve(ws.dead.len(), chosen, b);
        if path == AuxPath::Sparse && ws.aux_all.is_some() {
            // Few dead values are positive: the sparse path after all, on selected AuxK rows.
            let (z, bias, dead) = (&ws.z, &p.b_enc, &ws.dead);
            select::select_auxk(z, bias, dead, self.k_aux, &mut ws.sel, &mut ws.aux, None);
        }
        let sparse_aux = with_aux && path == AuxPath::Sparse;
        let n_u = self.prefixes.as_ref().map_or(0, |p| p.widths.len() - 1);
        ensure(&mut ws.gd, (2 + n_u) * b * d_in);
        ensure(&mut ws.dz, ws.act.nnz());
        ensure(&mut ws.adz, if sparse_aux { ws.aux.nnz() } else { 0 });
        let gscale = (-2.0 / var_x) as f32;
        let (g_rows, rest) = ws.gd.split_at_mut(b * d_in);
        let (diff_rows, u_rows) = rest.split_at_mut(b * d_in);
        let inp = RowInputs {
            x: y_rec,
            w_dec: &p.w_dec,
            b_dec: &p.b_dec,
            act: &ws.act,
            aux: if sparse_aux { &ws.aux } else { &ws.no_rows },
            gscale,
            copy_e: with_aux && !sparse_aux,
        };
        let sums = passes::row_pass(&inp, g_rows, diff_rows, &mut ws.dz, &mut ws.adz);
        let recon = sums.sse / var_x;
        let mut prefix_loss = 0.0;
        // Matryoshka: b_dec's gradient takes every prefix's error sum, weighted.
        let mut e_grad: Option<Vec<f64>> = None;
        if let Some(pre) = &self.prefixes {
            matryoshka::inner_entries(&ws.act, pre, &mut ws.inner);
            ensure(&mut ws.idz, ws.inner.nnz());
            // Every prefix reconstructs what the full decoder does: x, or a transcoder's target
            // (less the skip path, which each prefix's output also carries).
            let inp = PrefixInputs {
                x: y_rec,
                w_dec: &p.w_dec,
                b_dec: &p.b_dec,
                inner: &ws.inner,
                pre,
                gscale,
            };
            let ps = matryoshka::prefix_pass(&inp, u_rows, &mut ws.idz);
            prefix_loss = ps
                .sse
                .iter()
                .zip(&pre.weights)
                .map(|(e, w)| w * e)
                .sum::<f64>()
                / var_x;
            let mut e = sums.e_sum.clone();
            for (es, w) in ps.e_sum.iter().zip(&pre.weights) {
                e.iter_mut().zip(es).for_each(|(a, v)| *a += w * v);
            }
            e_grad = Some(e);
        }
        // V_e: total variance of e over the batch.
        let var_e = variance_from_sums(sums.sse, &sums.e_sum, b).max(1e-30);
        let hscale = (-2.0 * auxk_coef / var_e) as f32;
        let inner_part = match &self.prefixes {
            Some(pre) => Part {
                sets: &ws.inner,
                dz: &ws.idz,
                coef_scale: 1.0,
                dz_scale: 1.0,
                src_offset: 2 * b as u32,
                by_group: Some((&pre.widths, b as u32)),
            },
            None => Part {
                sets: &ws.no_rows,
                dz: &[],
                coef_scale: 1.0,
                dz_scale: 1.0,
                src_offset: 0,
                by_group: None,
            },
        };
        let parts = [
            Part {
                sets: &ws.act,
                dz: &ws.dz,
                coef_scale: 1.0,
                dz_scale: 1.0,
                src_offset: 0,
                by_group: None,
            },
            Part {
                sets: if sparse_aux { &ws.aux } else { &ws.no_rows },
                dz: &ws.adz,
                coef_scale: hscale,
                dz_scale: hscale,
                src_offset: b as u32,
                by_group: None,
            },
            inner_part,
        ];
        ws.by_latent.build(d_sae, &parts);
        passes::latent_pass(
            &ws.by_latent,
            &ws.gd,
            xc,
            passes::Widths {
                src: d_out,
                xc: p.d_in,
            },
            &mut grads.w_dec,
            &mut grads.w_enc_t,
            &mut grads.b_enc,
        );
        let aux_sse = if sparse_aux {
            sums.aux_sse
        } else if with_aux {
            let io = DenseAuxIo {
                dead: &ws.dead,
                w_dec: &p.w_dec,
                xc,
                e_h: &mut ws.gd[b * d_in..2 * b * d_in],
                dw_dec: &mut grads.w_dec,
                dw_enc_t: &mut grads.w_enc_t,
                db_enc: &mut grads.b_enc,
            };
            ws.dense_aux.run(io, d_out, p.d_in, hscale)
        } else {
            0.0
        };
        let aux = if with_aux { aux_sse / var_e } else { 0.0 };
        b_dec_grad(p, e_grad.as_deref().unwrap_or(&sums.e_sum), gscale, grads);
        if let Some(gs) = grads.w_skip.as_mut() {
            // dW_skip = x^T (g + u_0): the g rows are the first B rows of gd; Matryoshka's u_0
            // rows (gscale sum_s w_s e_s, every inner prefix's output carries x W_skip) follow
            // the AuxK rows.
            let g = Mat::new(&ws.gd[..b * d_out], b, d_out);
            matmul_into(gs, Mat::t(x, b, p.d_in), g, false);
            if self.prefixes.is_some() {
                let u0 = Mat::new(&ws.gd[2 * b * d_out..3 * b * d_out], b, d_out);
                matmul_into(gs, Mat::t(x, b, p.d_in), u0, true);
            }
        }
        let l0 = ws.act.nnz() as f64 / b as f64;
        Ok(StepOutput {
            loss: recon + prefix_loss + auxk_coef * aux,
            recon,
            aux,
            fvu: recon,
            l0,
            fired: ws.by_latent.fired.clone(),
            min_kept,
        })
    }
}

simd_dispatch! {
    /// a . b with the best instruction set.
    fn dot_dispatch(a: &[f32], b: &[f32]) -> f32 { dot(a, b) }
}

#[cfg(test)]
mod tests;
