//! Matryoshka BatchTopK's inner prefixes in the sparse step.
//!
//! With groups 0..n (prefix s = latents below `widths[s]`), prefix s < n-1 reconstructs on its own:
//! x_hat_s = b_dec + sum_{j active, j < widths[s]} f_rj W_dec[j], e_s = x - x_hat_s, and adds
//! w_s ||e_s||^2 / V to the loss. A latent of group t is in every prefix s >= t, so on top of the
//! full reconstruction's terms it gets dz_rj += u_t . W_dec[j] and dW_dec[j] += f_rj u_t with
//! u_t = gscale sum_{t <= s < n-1} w_s e_s (gscale = -2 / V); b_dec gets gscale sum_s w_s sum_r e_s.

use rayon::prelude::*;

use super::passes::split_at_bounds;
use super::select::{RowSets, ROW_BLOCK};
use crate::config::Prefixes;
use crate::vecops::{dot, gather_rows_into, simd_dispatch, sub_into};

/// What the prefix pass sums over rows.
#[derive(Clone, Debug, Default)]
pub struct PrefixSums {
    /// sum_r ||e_s,r||^2 per inner prefix.
    pub sse: Vec<f64>,
    /// sum_r e_s,r per inner prefix (each [d_in]).
    pub e_sum: Vec<Vec<f64>>,
}

impl PrefixSums {
    fn zeros(n: usize, d: usize) -> PrefixSums {
        PrefixSums {
            sse: vec![0.0; n],
            e_sum: vec![vec![0.0; d]; n],
        }
    }

    fn add(&mut self, o: &PrefixSums) {
        for (a, b) in self.sse.iter_mut().zip(&o.sse) {
            *a += b;
        }
        for (a, b) in self.e_sum.iter_mut().zip(&o.e_sum) {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
    }
}

/// Inputs of the prefix pass.
pub struct PrefixInputs<'a> {
    /// Batch [rows, d_in].
    pub x: &'a [f32],
    /// Decoder [d_sae, d_in].
    pub w_dec: &'a [f32],
    /// Decoder bias [d_in].
    pub b_dec: &'a [f32],
    /// Entries of the inner groups (latents below the last inner width), per row.
    pub inner: &'a RowSets,
    /// The prefixes.
    pub pre: &'a Prefixes,
    /// -2 / V.
    pub gscale: f32,
}

/// The entries of `act` in the inner groups (j < the last inner width), row by row.
pub fn inner_entries(act: &RowSets, pre: &Prefixes, out: &mut RowSets) {
    let n = pre.widths.len();
    let limit = if n >= 2 { pre.widths[n - 2] } else { 0 } as u32;
    out.off.clear();
    out.idx.clear();
    out.val.clear();
    out.off.push(0);
    for r in 0..act.rows() {
        let (idx, val) = act.row(r);
        for (&j, &v) in idx.iter().zip(val) {
            if j < limit {
                out.idx.push(j);
                out.val.push(v);
            }
        }
        out.off.push(out.idx.len());
    }
}

simd_dispatch! {
    /// Rows `r0..` of one block: u rows per inner group (`u[s]` the block's rows of u_s) and dz of
    /// the block's inner entries.
    fn prefix_block(
        inp: &PrefixInputs<'_>, r0: usize, u: &mut [&mut [f32]], dz: &mut [f32], sums: &mut PrefixSums,
    ) {
        let d = inp.b_dec.len();
        let groups = inp.pre.widths.len() - 1;
        let (mut xh, mut next, mut e) = (inp.b_dec.to_vec(), vec![0f32; d], vec![0f32; d]);
        let (mut gi, mut gv): (Vec<u32>, Vec<f32>) = (Vec::new(), Vec::new());
        let mut at = 0usize;
        let rows = u.first().map_or(0, |b| b.len() / d);
        for i in 0..rows {
            let r = r0 + i;
            let (idx, val) = inp.inner.row(r);
            xh.copy_from_slice(inp.b_dec);
            // Forward over the prefixes: e_s into u_s's row (scaled on the way back).
            for (s, us) in u.iter_mut().enumerate().take(groups) {
                let lo = if s == 0 { 0 } else { inp.pre.widths[s - 1] } as u32;
                let hi = inp.pre.widths[s] as u32;
                gi.clear();
                gv.clear();
                for (&j, &v) in idx.iter().zip(val) {
                    if (lo..hi).contains(&j) {
                        gi.push(j);
                        gv.push(v);
                    }
                }
                gather_rows_into(&mut next, &xh, &gi, &gv, inp.w_dec, d);
                std::mem::swap(&mut xh, &mut next);
                sub_into(&mut e, &inp.x[r * d..(r + 1) * d], &xh);
                sums.sse[s] += dot(&e, &e) as f64;
                sums.e_sum[s].iter_mut().zip(&e).for_each(|(a, v)| *a += *v as f64);
                us[i * d..(i + 1) * d].copy_from_slice(&e);
            }
            // Backward: u_s = gscale w_s e_s + u_{s+1}.
            for s in (0..groups).rev() {
                let c = inp.gscale * inp.pre.weights[s] as f32;
                let (lo, hi) = u.split_at_mut(s + 1);
                let row = &mut lo[s][i * d..(i + 1) * d];
                match hi.first() {
                    Some(up) => {
                        let up = &up[i * d..(i + 1) * d];
                        row.iter_mut().zip(up).for_each(|(a, b)| *a = c * *a + b);
                    }
                    None => row.iter_mut().for_each(|a| *a *= c),
                }
            }
            // dz of each inner entry from its group's u row (entries of a row in any order).
            for (n, &j) in idx.iter().enumerate() {
                let s = inp.pre.group_of(j as usize);
                let ur = &u[s][i * d..(i + 1) * d];
                dz[at + n] = dot(ur, &inp.w_dec[j as usize * d..][..d]);
            }
            at += idx.len();
        }
    }
}

/// Runs the prefix pass: `u` holds the inner groups' rows one group after another
/// ([groups, rows, d_in]), `dz` one value per inner entry; returns the per-prefix sums.
pub fn prefix_pass(inp: &PrefixInputs<'_>, u: &mut [f32], dz: &mut [f32]) -> PrefixSums {
    let d = inp.b_dec.len();
    let groups = inp.pre.widths.len() - 1;
    let rows = inp.x.len() / d;
    let starts: Vec<usize> = (0..rows.div_ceil(ROW_BLOCK))
        .map(|b| b * ROW_BLOCK)
        .chain([rows])
        .collect();
    let row_bounds: Vec<usize> = starts.iter().map(|r| r * d).collect();
    // Per block, one slice of each group's rows.
    let mut per_block: Vec<Vec<&mut [f32]>> = (0..starts.len() - 1).map(|_| Vec::new()).collect();
    for g in u.chunks_exact_mut(rows * d).take(groups) {
        for (b, part) in split_at_bounds(g, &row_bounds).into_iter().enumerate() {
            per_block[b].push(part);
        }
    }
    let dz_bounds: Vec<usize> = starts.iter().map(|&r| inp.inner.off[r]).collect();
    let dzs = split_at_bounds(dz, &dz_bounds);
    let parts: Vec<PrefixSums> = per_block
        .into_par_iter()
        .zip(dzs)
        .enumerate()
        .map(|(b, (mut ub, dzb))| {
            let mut s = PrefixSums::zeros(groups, d);
            prefix_block(inp, starts[b], &mut ub, dzb, &mut s);
            s
        })
        .collect();
    let mut total = PrefixSums::zeros(groups, d);
    for p in &parts {
        total.add(p);
    }
    total
}
