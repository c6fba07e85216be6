//! ReLU-L1 and JumpReLU with the sparse passes of the TopK step once few latents fire: the encoder
//! GEMM stays dense, decode and backward touch the firing entries (and, for JumpReLU, the entries
//! inside the threshold kernel). While more than [`DENSE_DENSITY`] of the entries fire (early in
//! training) the dense GEMM step [`DenseStep`] is faster and runs instead. The gradients are those
//! of [`crate::dense_step`] (whose header derives them), summed in the same row order. With the
//! pre-activation estimator the kernel-window entries add their dz to the latent pass (narrow
//! window) or through one more GEMM dz_win^T xc (wide window).

use rayon::prelude::*;

use super::encode::{centred, dense_z};
use super::jump::{jumprelu_terms, JumpTerms};
use super::passes::{self, ByLatent, Part, RowInputs};
use super::select::RowSets;
use super::threshold::{count_and_fire, select_threshold, Rule};
use super::{b_dec_grad, dot_dispatch, ensure};
use crate::config::ArchConfig;
use crate::dense_step::DenseStep;
use crate::error::{Result, TrainError};
use crate::kernels::matmul_tn_into;
use crate::params::Params;
use crate::step::{Grads, Step, StepContext, StepOutput};

/// Above this fraction of firing entries the dense step is used.
pub const DENSE_DENSITY: f64 = 0.05;

/// Which implementation a threshold step uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DensityPath {
    /// Always the sparse passes.
    Sparse,
    /// Always the dense GEMM step.
    Dense,
    /// Sparse while at most [`DENSE_DENSITY`] of the entries fire.
    Auto,
}

/// Step for [`ArchConfig::ReluL1`] and [`ArchConfig::JumpRelu`].
pub struct SparseThresholdStep {
    arch: ArchConfig,
    dense: DenseStep,
    path: DensityPath,
    ws: Workspace,
}

#[derive(Default)]
pub(super) struct Workspace {
    pub(super) xc: Vec<f32>,
    pub(super) z: Vec<f32>,
    /// dF = G W_dec^T [B, d_sae] when the kernel window is wide.
    pub(super) f: Vec<f32>,
    pub(super) lower: Vec<f32>,
    pub(super) act: RowSets,
    pub(super) win: RowSets,
    /// dz of the kernel-window entries (pre-activation estimator, narrow window).
    pub(super) wdz: Vec<f32>,
    /// db_enc of the window entries (pre-activation estimator, wide window).
    pub(super) wdb: Vec<f32>,
    pub(super) g: Vec<f32>,
    pub(super) dz: Vec<f32>,
    pub(super) by_latent: ByLatent,
    pub(super) no_rows: RowSets,
    /// dW_enc [d_in, d_sae] before its transpose (wide window).
    pub(super) gt: Vec<f32>,
}

impl SparseThresholdStep {
    /// A step for `arch` (ReLU-L1 or JumpReLU), choosing its path by density.
    pub fn new(arch: ArchConfig) -> Self {
        SparseThresholdStep {
            dense: DenseStep { arch: arch.clone() },
            arch,
            path: DensityPath::Auto,
            ws: Workspace::default(),
        }
    }

    /// The same step on one path (tests compare both).
    pub fn with_path(mut self, path: DensityPath) -> Self {
        self.path = path;
        self
    }
}

/// ||W_dec[j]|| for every latent.
fn row_norms(w_dec: &[f32], d: usize) -> Vec<f32> {
    w_dec
        .par_chunks(d)
        .map(|r| dot_dispatch(r, r).sqrt())
        .collect()
}

impl Step for SparseThresholdStep {
    fn run(
        &mut self,
        x: &[f32],
        p: &Params,
        ctx: &StepContext<'_>,
        grads: &mut Grads,
    ) -> Result<StepOutput> {
        if p.transcoder {
            // Transcoders take the dense GEMM step (the sparse passes assume d_out = d_in).
            let (xc, z) = crate::kernels::pre_acts(x, p);
            return self.dense.run_on(x, &xc, z, p, ctx, grads);
        }
        let (d_in, d_sae) = (p.d_in, p.d_sae);
        let b = x.len() / d_in;
        let (theta, eps) = self.thresholds(p)?;
        let ws = &mut self.ws;
        let var_x = centred(x, p, &mut ws.xc);
        dense_z(&ws.xc, p, &mut ws.z);
        // The path follows this batch's own counts (never the steps before it).
        ws.lower.clear();
        match &theta {
            Some(t) => ws.lower.extend_from_slice(t),
            None => ws.lower.resize(d_sae, 0.0),
        }
        let jump = theta.is_some();
        // One read of z counts and (while few fire) collects the firing entries.
        let counted = count_and_fire(
            &ws.z,
            &p.b_enc,
            &ws.lower,
            eps.max(1e-30),
            jump,
            &mut ws.act,
        );
        let (density, window) = (counted.density, counted.window);
        let dense_now = match self.path {
            DensityPath::Dense => true,
            DensityPath::Sparse => false,
            DensityPath::Auto => density > DENSE_DENSITY,
        };
        if dense_now {
            let mut z = std::mem::take(&mut ws.z);
            z.par_chunks_mut(d_sae)
                .for_each(|r| r.iter_mut().zip(&p.b_enc).for_each(|(v, b)| *v += b));
            return self.dense.run_on(x, &ws.xc, z, p, ctx, grads);
        }
        // A wide kernel window (many entries): its gradient comes from a dense pass over z and
        // dF instead of collected entries.
        let wide = window > DENSE_DENSITY;
        if let (Some(t), false) = (&theta, wide) {
            ws.lower.clear();
            ws.lower.extend(t.iter().map(|t| t - eps));
        }
        // The count already holds the firing entries unless a narrow window must be collected
        // too (or too many fired to keep).
        let narrow = jump && !wide;
        if narrow || !counted.complete {
            let rule = Rule {
                theta: theta.as_deref(),
                eps,
                lower: &ws.lower,
                window: narrow,
            };
            select_threshold(&ws.z, &p.b_enc, &rule, &mut ws.act, &mut ws.win);
        }
        let bf = b as f32;
        let gscale = -2.0 / bf;
        ensure(&mut ws.g, b * d_in);
        ensure(&mut ws.dz, ws.act.nnz());
        let inp = RowInputs {
            x,
            w_dec: &p.w_dec,
            b_dec: &p.b_dec,
            act: &ws.act,
            aux: &ws.no_rows,
            gscale,
            copy_e: false,
        };
        let sums = passes::row_pass(&inp, &mut ws.g, &mut [], &mut ws.dz, &mut []);
        let l0 = ws.act.nnz() as f64 / b as f64;
        let pre = matches!(
            self.arch,
            ArchConfig::JumpRelu {
                pre_act_ste: true,
                ..
            }
        );
        let (penalty, l1) = match &theta {
            None => {
                let (pen, l1) = relu_l1_terms(ws, p, ctx.sparsity_coef, bf);
                (pen, Some(l1))
            }
            Some(t) => {
                let jt = JumpTerms {
                    t,
                    eps,
                    l0,
                    coef: ctx.sparsity_coef,
                    bf,
                    wide,
                    pre,
                };
                (jumprelu_terms(&self.arch, ws, p, &jt, grads), None)
            }
        };
        let ws = &mut self.ws;
        if pre && wide {
            // ws.f holds every entry's dz: one GEMM gives dW_enc^T, the column sums db_enc, and
            // the sparse pass only dW_dec.
            latent_gradients(ws, p, Encoder::None, grads);
            matmul_tn_into(&mut grads.w_enc_t, &ws.f, &ws.xc, b, &mut ws.gt);
            grads.b_enc.copy_from_slice(&ws.wdb);
        } else {
            let enc = match pre {
                true => Encoder::WithWindow,
                false => Encoder::Firing,
            };
            latent_gradients(ws, p, enc, grads);
        }
        if let Some(l1) = &l1 {
            add_l1_decoder_term(l1, p, ctx.sparsity_coef as f32 / bf, grads);
        }
        b_dec_grad(p, &sums.e_sum, gscale, grads);
        let recon = sums.sse / b as f64;
        Ok(StepOutput {
            loss: recon + penalty,
            recon,
            aux: penalty,
            fvu: sums.sse / var_x,
            l0,
            fired: ws.by_latent.fired.clone(),
            min_kept: None,
        })
    }
}

impl SparseThresholdStep {
    /// JumpReLU's thresholds theta = exp(log_threshold) and kernel width (None and 0 for ReLU).
    fn thresholds(&self, p: &Params) -> Result<(Option<Vec<f32>>, f32)> {
        let theta: Option<Vec<f32>> = p
            .log_threshold
            .as_ref()
            .map(|lt| lt.iter().map(|v| v.exp()).collect());
        let eps = match (&self.arch, &theta) {
            (ArchConfig::ReluL1 { .. }, None) => 0.0,
            (ArchConfig::JumpRelu { bandwidth, .. }, Some(_)) => *bandwidth as f32,
            _ => {
                return Err(TrainError::Invalid(format!(
                    "the threshold step handles relu-l1 and jumprelu (with thresholds), not {}",
                    self.arch.name()
                )))
            }
        };
        Ok((theta, eps))
    }
}

/// What the sparse latent pass gives the encoder.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoder {
    /// dW_enc^T and db_enc from the firing entries.
    Firing,
    /// From the firing entries and the kernel-window ones (pre-activation estimator, narrow
    /// window), which move z only (coefficient 0).
    WithWindow,
    /// Nothing: the caller finds dW_enc^T and db_enc by a GEMM (wide window).
    None,
}

/// dW_dec from the firing entries and, as `enc` says, dW_enc^T and db_enc.
fn latent_gradients(ws: &mut Workspace, p: &Params, enc: Encoder, grads: &mut Grads) {
    let window = enc == Encoder::WithWindow;
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
            sets: if window { &ws.win } else { &ws.no_rows },
            dz: &ws.wdz,
            coef_scale: 0.0,
            dz_scale: 1.0,
            src_offset: 0,
            by_group: None,
        },
    ];
    ws.by_latent.build(p.d_sae, &parts);
    if enc == Encoder::None {
        passes::decoder_pass(&ws.by_latent, &ws.g, p.d_in, &mut grads.w_dec);
        return;
    }
    passes::latent_pass(
        &ws.by_latent,
        &ws.g,
        &ws.xc,
        passes::Widths {
            src: p.d_in,
            xc: p.d_in,
        },
        &mut grads.w_dec,
        &mut grads.w_enc_t,
        &mut grads.b_enc,
    );
}

/// ReLU-L1's per-latent sums, found once for the penalty, dz and the decoder term.
struct L1Sums {
    /// sum_r f_rj.
    fsum: Vec<f32>,
    /// ||W_dec[j]||.
    norms: Vec<f32>,
}

/// ReLU-L1: dz += lambda n_j / B on the firing entries; returns the penalty
/// lambda / B sum_j n_j sum_r f_rj and the sums it used.
fn relu_l1_terms(ws: &mut Workspace, p: &Params, coef: f64, bf: f32) -> (f64, L1Sums) {
    let norms = row_norms(&p.w_dec, p.d_in);
    let lam = coef as f32;
    let mut fsum = vec![0f32; p.d_sae];
    for (n, (&j, &v)) in ws.act.idx.iter().zip(&ws.act.val).enumerate() {
        fsum[j as usize] += v;
        ws.dz[n] += lam * norms[j as usize] / bf;
    }
    let pen = coef
        * fsum
            .iter()
            .zip(&norms)
            .map(|(s, n)| (*s as f64) * (*n as f64))
            .sum::<f64>()
        / bf as f64;
    (pen, L1Sums { fsum, norms })
}

/// ReLU-L1's decoder term: dW_dec[j] += (lambda / B) (sum_r f_rj) W_dec[j] / n_j.
fn add_l1_decoder_term(l1: &L1Sums, p: &Params, lam_over_b: f32, grads: &mut Grads) {
    let d = p.d_in;
    grads
        .w_dec
        .par_chunks_mut(d)
        .zip(p.w_dec.par_chunks(d))
        .zip(l1.fsum.par_iter().zip(l1.norms.par_iter()))
        .for_each(|((gw, w), (&s, &n))| {
            if n > 0.0 && s > 0.0 {
                let c = lam_over_b * s / n;
                gw.iter_mut().zip(w).for_each(|(g, w)| *g += c * w);
            }
        });
}
