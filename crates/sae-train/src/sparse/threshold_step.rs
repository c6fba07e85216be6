//! ReLU-L1 and JumpReLU with the sparse passes of the TopK step once few latents fire: the encoder
//! GEMM stays dense, decode and backward touch the firing entries (and, for JumpReLU, the entries
//! inside the threshold kernel). While more than [`DENSE_DENSITY`] of the entries fire (early in
//! training) the dense GEMM step [`DenseStep`] is faster and runs instead. The gradients are those
//! of [`crate::dense_step`] (whose header derives them), summed in the same row order.

use rayon::prelude::*;

use super::passes::{self, ByLatent, Part, RowInputs};
use super::select::RowSets;
use super::threshold::{fractions, select_threshold, Rule};
use super::{b_dec_grad, dot_dispatch, encode, ensure};
use crate::config::ArchConfig;
use crate::dense_step::{l0_penalty, DenseStep};
use crate::error::{Result, TrainError};
use crate::kernels::{matmul_into, Mat};
use crate::params::Params;
use crate::step::{Grads, Step, StepContext, StepOutput};
use crate::vecops::simd_dispatch;

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
struct Workspace {
    xc: Vec<f32>,
    z: Vec<f32>,
    /// dF = G W_dec^T [B, d_sae] when the kernel window is wide.
    f: Vec<f32>,
    lower: Vec<f32>,
    act: RowSets,
    win: RowSets,
    g: Vec<f32>,
    dz: Vec<f32>,
    by_latent: ByLatent,
    no_rows: RowSets,
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
        let (d_in, d_sae) = (p.d_in, p.d_sae);
        let b = x.len() / d_in;
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
        let ws = &mut self.ws;
        let var_x = encode(x, p, &mut ws.xc, &mut ws.z);
        // The path follows this batch's own counts (never the steps before it).
        ws.lower.clear();
        match &theta {
            Some(t) => ws.lower.extend_from_slice(t),
            None => ws.lower.resize(d_sae, 0.0),
        }
        let jump = theta.is_some();
        let (density, window) = fractions(&ws.z, &p.b_enc, &ws.lower, eps.max(1e-30), jump);
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
        let rule = Rule {
            theta: theta.as_deref(),
            eps,
            lower: &ws.lower,
            window: !wide,
        };
        select_threshold(&ws.z, &p.b_enc, &rule, &mut ws.act, &mut ws.win);
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
                };
                (jumprelu_terms(&self.arch, ws, p, &jt, grads), None)
            }
        };
        let ws = &mut self.ws;
        ws.by_latent.build(
            d_sae,
            &[Part {
                sets: &ws.act,
                dz: &ws.dz,
                coef_scale: 1.0,
                dz_scale: 1.0,
                src_offset: 0,
            }],
        );
        passes::latent_pass(
            &ws.by_latent,
            &ws.g,
            &ws.xc,
            d_in,
            &mut grads.w_dec,
            &mut grads.w_enc_t,
            &mut grads.b_enc,
        );
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

/// What the JumpReLU threshold gradient needs besides the workspace.
struct JumpTerms<'a> {
    t: &'a [f32],
    eps: f32,
    l0: f64,
    coef: f64,
    bf: f32,
    wide: bool,
}

/// JumpReLU: the L0 penalty and the threshold gradient
/// dlog_theta_j = theta_j sum_{r in window} (-(theta_j / eps) dF_rj - P'(L0) / (eps B)), with
/// dF = g . W_dec[j]. Returns the penalty.
fn jumprelu_terms(
    arch: &ArchConfig,
    ws: &mut Workspace,
    p: &Params,
    jt: &JumpTerms<'_>,
    grads: &mut Grads,
) -> f64 {
    let ArchConfig::JumpRelu { target_l0, .. } = arch else {
        unreachable!("checked by the caller")
    };
    let (pen, dpen) = l0_penalty(*target_l0, jt.coef, jt.l0);
    let c = dpen as f32 / (jt.eps * jt.bf);
    let lt = grads
        .log_threshold
        .get_or_insert_with(|| vec![0.0; p.d_sae]);
    if jt.wide {
        wide_window_grad(ws, p, jt, c, lt);
    } else {
        let df = window_df(ws, p);
        lt.iter_mut().for_each(|v| *v = 0.0);
        for (&j, &dfv) in ws.win.idx.iter().zip(&df) {
            let j = j as usize;
            lt[j] += -(jt.t[j] / jt.eps) * dfv - c;
        }
    }
    lt.iter_mut().zip(jt.t).for_each(|(gv, t)| *gv *= t);
    pen
}

/// dF = g . W_dec[j] on the collected window entries (one dot each).
fn window_df(ws: &Workspace, p: &Params) -> Vec<f32> {
    let d = p.d_in;
    let (win, g) = (&ws.win, &ws.g);
    (0..win.rows())
        .into_par_iter()
        .flat_map_iter(|r| {
            let gr = &g[r * d..(r + 1) * d];
            win.row(r)
                .0
                .iter()
                .map(move |&j| dot_dispatch(gr, &p.w_dec[j as usize * d..(j as usize + 1) * d]))
        })
        .collect()
}

/// The threshold gradient (before the factor theta) from dF = G W_dec^T by one GEMM and a dense
/// pass over (z, dF), row blocks summed in block order.
fn wide_window_grad(ws: &mut Workspace, p: &Params, jt: &JumpTerms<'_>, c: f32, lt: &mut [f32]) {
    let (d, d_sae) = (p.d_in, p.d_sae);
    let rows = ws.g.len() / d;
    ensure(&mut ws.f, rows * d_sae);
    let (gm, wt) = (Mat::new(&ws.g, rows, d), Mat::t(&p.w_dec, d_sae, d));
    matmul_into(&mut ws.f, gm, wt, false);
    let blk = 64 * d_sae;
    let parts: Vec<Vec<f32>> =
        ws.z.par_chunks(blk)
            .zip(ws.f.par_chunks(blk))
            .map(|(zb, fb)| window_block(zb, fb, &p.b_enc, jt.t, jt.eps, c))
            .collect();
    lt.iter_mut().for_each(|v| *v = 0.0);
    for part in parts {
        lt.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
    }
}

simd_dispatch! {
    /// One row block of the wide-window threshold gradient.
    fn window_block(z: &[f32], f: &[f32], b: &[f32], t: &[f32], eps: f32, c: f32) -> Vec<f32> {
        let d = b.len();
        let mut acc = vec![0f32; d];
        for (zr, fr) in z.chunks_exact(d).zip(f.chunks_exact(d)) {
            for j in 0..d {
                let inside = (((zr[j] + b[j]) - t[j]) / eps).abs() < 0.5;
                acc[j] += if inside { -(t[j] / eps) * fr[j] - c } else { 0.0 };
            }
        }
        acc
    }
}
