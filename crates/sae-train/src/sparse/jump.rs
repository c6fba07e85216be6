//! JumpReLU's straight-through terms for [`super::SparseThresholdStep`]: the L0 penalty, the
//! threshold gradient over the kernel-window entries (collected, or by one GEMM and a dense pass
//! when the window is wide) and, with the pre-activation estimator, the window entries' dz.

use rayon::prelude::*;

use super::dot_dispatch;
use super::ensure;
use super::threshold_step::Workspace;
use crate::config::ArchConfig;
use crate::dense_step::l0_penalty;
use crate::kernels::{matmul_into, Mat};
use crate::params::Params;
use crate::step::Grads;
use crate::vecops::simd_dispatch;

/// What the JumpReLU threshold gradient needs besides the workspace.
pub(super) struct JumpTerms<'a> {
    pub(super) t: &'a [f32],
    pub(super) eps: f32,
    pub(super) l0: f64,
    pub(super) coef: f64,
    pub(super) bf: f32,
    pub(super) wide: bool,
    /// The pre-activation estimator: window entries get dz = -(their threshold term).
    pub(super) pre: bool,
}

/// JumpReLU: the L0 penalty and the threshold gradient
/// dlog_theta_j = theta_j sum_{r in window} (-(theta_j / eps) dF_rj - P'(L0) / (eps B)), with
/// dF = g . W_dec[j] (with the pre-activation estimator, each window entry's term negated is its
/// dz). Returns the penalty.
pub(super) fn jumprelu_terms(
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
        ws.wdz.clear();
        for (&j, &dfv) in ws.win.idx.iter().zip(&df) {
            let j = j as usize;
            let w = -(jt.t[j] / jt.eps) * dfv - c;
            lt[j] += w;
            if jt.pre {
                ws.wdz.push(-w);
            }
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
/// pass over (z, dF), row blocks summed in block order. With the pre-activation estimator the
/// pass leaves every entry's whole dz in `ws.f` (dF where the latent fires, plus the window's
/// term) and its column sums (db_enc) in `ws.wdb`: one GEMM dz^T xc then gives all of dW_enc^T.
fn wide_window_grad(ws: &mut Workspace, p: &Params, jt: &JumpTerms<'_>, c: f32, lt: &mut [f32]) {
    let (d, d_sae) = (p.d_in, p.d_sae);
    let rows = ws.g.len() / d;
    ensure(&mut ws.f, rows * d_sae);
    let (gm, wt) = (Mat::new(&ws.g, rows, d), Mat::t(&p.w_dec, d_sae, d));
    matmul_into(&mut ws.f, gm, wt, false);
    let blk = 64 * d_sae;
    let parts: Vec<(Vec<f32>, Vec<f32>)> =
        ws.z.par_chunks(blk)
            .zip(ws.f.par_chunks_mut(blk))
            .map(|(zb, fb)| window_block(zb, fb, &p.b_enc, jt.t, jt.eps, c, jt.pre))
            .collect();
    lt.iter_mut().for_each(|v| *v = 0.0);
    ws.wdb.clear();
    ws.wdb.resize(d_sae, 0.0);
    for (part, db) in parts {
        lt.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
        if jt.pre {
            ws.wdb.iter_mut().zip(&db).for_each(|(a, b)| *a += b);
        }
    }
}

simd_dispatch! {
    /// One row block of the wide-window threshold gradient (and, with `pre`, each entry's whole
    /// dz = dF [fires] - (window term) written over dF, and its column sums).
    fn window_block(
        z: &[f32], f: &mut [f32], b: &[f32], t: &[f32], eps: f32, c: f32, pre: bool,
    ) -> (Vec<f32>, Vec<f32>) {
        let d = b.len();
        let mut acc = vec![0f32; d];
        let mut dsum = vec![0f32; if pre { d } else { 0 }];
        for (zr, fr) in z.chunks_exact(d).zip(f.chunks_exact_mut(d)) {
            for j in 0..d {
                let v = zr[j] + b[j];
                let inside = ((v - t[j]) / eps).abs() < 0.5;
                let w = if inside { -(t[j] / eps) * fr[j] - c } else { 0.0 };
                acc[j] += w;
                if pre {
                    let on = if v > t[j] { fr[j] } else { 0.0 };
                    fr[j] = on - w;
                    dsum[j] += fr[j];
                }
            }
        }
        (acc, dsum)
    }
}
