//! The dense encoder of the sparse steps: the inputs centred (or a transcoder's skip path taken
//! off its target), then one parallel GEMM, then the TopK-family selections on its output.

use rayon::prelude::*;

use super::{batch, ensure, select, variance_from_sums, SparseTopKStep};
use crate::config::{ArchConfig, Prefixes};
use crate::error::{Result, TrainError};
use crate::kernels::{matmul_into, Mat};
use crate::params::Params;
use crate::step::StepContext;
use crate::vecops::{dot, simd_dispatch};

simd_dispatch! {
    /// xc = x - b_dec for a block of rows; returns (sum_r x_r, sum_r ||x_r||^2) of the block in f64.
    fn centre_block(x: &[f32], b_dec: &[f32], xc: &mut [f32]) -> (Vec<f64>, f64) {
        let d = b_dec.len();
        let mut s = vec![0f64; d];
        let mut ss = 0f64;
        for (xr, cr) in x.chunks_exact(d).zip(xc.chunks_exact_mut(d)) {
            for ((c, a), b) in cr.iter_mut().zip(xr).zip(b_dec) {
                *c = a - b;
            }
            ss += dot(xr, xr) as f64;
            s.iter_mut().zip(xr).for_each(|(t, v)| *t += *v as f64);
        }
        (s, ss)
    }
}

/// Fills `xc` = x - b_dec and returns the total variance of x (sum_r ||x_r - mean||^2), both in
/// parallel row blocks summed in block order.
fn centre(x: &[f32], b_dec: &[f32], xc: &mut [f32]) -> f64 {
    let d = b_dec.len();
    let n = x.len() / d;
    let blk = 64 * d;
    let parts: Vec<(Vec<f64>, f64)> = x
        .par_chunks(blk)
        .zip(xc.par_chunks_mut(blk))
        .map(|(xb, cb)| centre_block(xb, b_dec, cb))
        .collect();
    let mut s = vec![0f64; d];
    let mut ss = 0f64;
    for (ps, pss) in parts {
        s.iter_mut().zip(&ps).for_each(|(a, b)| *a += b);
        ss += pss;
    }
    variance_from_sums(ss, &s, n)
}

/// An autoencoder's encoder input xc = x - b_dec (into `xc`) and the total variance of x.
pub(super) fn centred(x: &[f32], p: &Params, xc: &mut Vec<f32>) -> f64 {
    ensure(xc, x.len());
    centre(x, &p.b_dec, xc).max(1e-30)
}

/// The encoder's input rows and the total variance of what the decoder reconstructs: an
/// autoencoder writes xc = x - b_dec and returns the variance of x; a transcoder (its input is not
/// centred) returns the variance of its target y, and a skip transcoder writes ys = y - x W_skip.
pub(super) fn prepare(
    x: &[f32],
    y: &[f32],
    p: &Params,
    xc: &mut Vec<f32>,
    ys: &mut Vec<f32>,
) -> f64 {
    let (d_in, d_out) = (p.d_in, p.d_out);
    let b = x.len() / d_in;
    if !p.transcoder {
        return centred(x, p, xc);
    }
    if let Some(w) = &p.w_skip {
        ensure(ys, b * d_out);
        matmul_into(ys, Mat::new(x, b, d_in), Mat::new(w, d_in, d_out), false);
        ys.par_iter_mut()
            .zip(y.par_iter())
            .for_each(|(s, t)| *s = t - *s);
    }
    crate::step::total_variance(y, d_out).max(1e-30)
}

/// z = inp W_enc [B, d_sae] (without the bias) in one parallel GEMM.
pub(super) fn dense_z(inp: &[f32], p: &Params, z: &mut Vec<f32>) {
    let (d_in, d_sae) = (p.d_in, p.d_sae);
    let b = inp.len() / d_in;
    ensure(z, b * d_sae);
    matmul_into(
        z,
        Mat::new(inp, b, d_in),
        Mat::new(&p.w_enc, d_in, d_sae),
        false,
    );
}

impl SparseTopKStep {
    /// The encoder on `inp` (centred rows, or a transcoder's input rows), its active latents into
    /// `ws.act` and AuxK latents into `ws.aux`; returns the AuxK coefficient and, for BatchTopK,
    /// the smallest kept activation.
    pub(super) fn encode_select(
        &mut self,
        inp: &[f32],
        p: &Params,
        ctx: &StepContext<'_>,
        b: usize,
    ) -> Result<(f64, Option<f32>)> {
        let ws = &mut self.ws;
        ws.dead.clear();
        ws.dead
            .extend((0..p.d_sae as u32).filter(|&j| ctx.dead[j as usize]));
        let (k, auxk_coef, batch) = match &self.arch {
            ArchConfig::TopK { k, auxk_coef, .. } => (*k, *auxk_coef, false),
            ArchConfig::BatchTopK { k, auxk_coef, .. } => (*k, *auxk_coef, true),
            ArchConfig::MatryoshkaBatchTopK {
                k,
                auxk_coef,
                group_fractions,
                group_weights,
                ..
            } => {
                if self.prefixes.is_none() {
                    let pre = Prefixes::new(group_fractions, group_weights.as_deref(), p.d_sae)?;
                    self.prefixes = (pre.widths.len() > 1).then_some(pre);
                }
                (*k, *auxk_coef, true)
            }
            other => {
                return Err(TrainError::Invalid(format!(
                    "the sparse step handles the TopK family, not {}",
                    other.name()
                )))
            }
        };
        dense_z(inp, p, &mut ws.z);
        // Wherever AuxK may take the dense path, the selection fills its block while each row of
        // z is in cache, every row cut back to its k_aux largest positive dead values, and no
        // per-row AuxK selection runs (`run` selects after all if the cost rule then picks the
        // sparse path).
        let all = !ws.dead.is_empty()
            && self.k_aux > 0
            && self.aux_path.may_be_dense(ws.dead.len(), self.k_aux);
        let (z, bias) = (&ws.z, &p.b_enc);
        let dead: &[u32] = if all { &[] } else { &ws.dead };
        let dense = all.then(|| select::DenseBlock {
            dead: &ws.dead,
            out: ws.dense_aux.block_mut(b, ws.dead.len()),
        });
        let (min_kept, kept) = if batch {
            // BatchTopK's threshold is over the whole batch (the dense AuxK block filled in the
            // same read of z); the sparse AuxK rows, where AuxK cannot go dense, by a row pass.
            let (s, act, k_aux) = (&mut ws.batch, &mut ws.act, self.k_aux);
            let sel = batch::select_batchtopk(z, bias, k * b, s, act, dense, k_aux);
            if !all {
                select::select_auxk(z, bias, dead, k_aux, &mut ws.sel, &mut ws.aux, None);
            }
            (sel.threshold, sel.dense_kept)
        } else {
            let (s, act, aux) = (&mut ws.sel, &mut ws.act, &mut ws.aux);
            let kept = select::select_topk(z, bias, k, dead, self.k_aux, s, act, aux, dense);
            (None, kept)
        };
        ws.aux_all = all.then_some(kept);
        Ok((auxk_coef, min_kept))
    }
}
