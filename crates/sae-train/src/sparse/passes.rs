//! The two sparse passes of the TopK-family step after selection, both parallel and independent of
//! the thread count:
//! - per row: decode from the active decoder rows, the error e, g = gscale e, dz = g . W_dec[j]; with
//!   AuxK also the dead-latent reconstruction of e, its residual diff and diff . W_dec[j];
//! - per latent (a counting-sort transpose of the row sets): dW_dec[j], dW_enc^T[j] and db_enc[j]
//!   gathered from the rows where j is active, so no two tasks write the same memory.

use rayon::prelude::*;

use super::select::{RowSets, ROW_BLOCK};
use crate::vecops::{axpy, axpy4, dot, dots_gathered, gather_rows_into, simd_dispatch, sub_into};

/// Splits `buf` at the given increasing boundaries (first 0, last buf.len()).
pub(super) fn split_at_bounds<'a, T>(mut buf: &'a mut [T], bounds: &[usize]) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(bounds.len().saturating_sub(1));
    for w in bounds.windows(2) {
        let (a, b) = buf.split_at_mut(w[1] - w[0]);
        out.push(a);
        buf = b;
    }
    out
}

/// What the row pass sums over rows (in f64, in row-block order).
#[derive(Clone, Debug, Default)]
pub struct RowSums {
    /// sum_r ||e_r||^2.
    pub sse: f64,
    /// sum_r e_r (per input dimension).
    pub e_sum: Vec<f64>,
    /// sum_r ||diff_r||^2 (AuxK residual).
    pub aux_sse: f64,
}

/// Inputs of the row pass.
pub struct RowInputs<'a> {
    /// Batch [rows, d_in].
    pub x: &'a [f32],
    /// Decoder [d_sae, d_in].
    pub w_dec: &'a [f32],
    /// Decoder bias [d_in].
    pub b_dec: &'a [f32],
    /// Active latents.
    pub act: &'a RowSets,
    /// AuxK latents (no rows when AuxK is off).
    pub aux: &'a RowSets,
    /// g = gscale * e.
    pub gscale: f32,
    /// Without sparse AuxK rows, still write e into the AuxK rows (for the dense AuxK block).
    pub copy_e: bool,
}

simd_dispatch! {
    /// Rows `r0..` of one block; `g` holds the block's g rows, `diff` its AuxK residual rows.
    fn row_block(
        inp: &RowInputs<'_>, r0: usize, g: &mut [f32], diff: &mut [f32],
        dz: &mut [f32], adz: &mut [f32], sums: &mut RowSums,
    ) {
        let d = inp.b_dec.len();
        let mut xh = vec![0f32; d];
        let (mut dz_at, mut adz_at) = (0usize, 0usize);
        let with_aux = inp.aux.nnz() > 0;
        for (i, gr) in g.chunks_exact_mut(d).enumerate() {
            let r = r0 + i;
            let (idx, val) = inp.act.row(r);
            gather_rows_into(&mut xh, inp.b_dec, idx, val, inp.w_dec, d);
            sub_into(gr, &inp.x[r * d..(r + 1) * d], &xh);
            sums.sse += dot(gr, gr) as f64;
            sums.e_sum.iter_mut().zip(gr.iter()).for_each(|(s, e)| *s += *e as f64);
            if inp.copy_e || with_aux {
                diff[i * d..(i + 1) * d].copy_from_slice(gr);
            }
            if with_aux {
                let (aidx, aval) = inp.aux.row(r);
                let dr = &mut diff[i * d..(i + 1) * d];
                for (&j, &a) in aidx.iter().zip(aval) {
                    axpy(dr, -a, &inp.w_dec[j as usize * d..(j as usize + 1) * d]);
                }
                sums.aux_sse += dot(dr, dr) as f64;
                for &j in aidx {
                    adz[adz_at] = dot(dr, &inp.w_dec[j as usize * d..(j as usize + 1) * d]);
                    adz_at += 1;
                }
            }
            gr.iter_mut().for_each(|v| *v *= inp.gscale);
            dots_gathered(&mut dz[dz_at..dz_at + idx.len()], gr, idx, inp.w_dec, d);
            dz_at += idx.len();
        }
    }
}

/// Runs the row pass: fills `g` [rows, d_in], `diff` [rows, d_in] (AuxK only), `dz` (one per active
/// entry) and `adz` (diff . W_dec[j], one per AuxK entry) and returns the row sums.
pub fn row_pass(
    inp: &RowInputs<'_>,
    g: &mut [f32],
    diff: &mut [f32],
    dz: &mut [f32],
    adz: &mut [f32],
) -> RowSums {
    let d = inp.b_dec.len();
    let rows = inp.x.len() / d;
    let starts: Vec<usize> = (0..rows.div_ceil(ROW_BLOCK))
        .map(|b| b * ROW_BLOCK)
        .chain([rows])
        .collect();
    let bounds = |off: &[usize]| -> Vec<usize> {
        if off.len() <= 1 {
            vec![0; starts.len()]
        } else {
            starts.iter().map(|&r| off[r]).collect()
        }
    };
    let row_bounds: Vec<usize> = starts.iter().map(|r| r * d).collect();
    let with_aux = inp.aux.nnz() > 0 || inp.copy_e;
    let diff_bounds = if with_aux {
        row_bounds.clone()
    } else {
        vec![0; starts.len()]
    };
    let gs = split_at_bounds(g, &row_bounds);
    let ds = split_at_bounds(diff, &diff_bounds);
    let dzs = split_at_bounds(dz, &bounds(&inp.act.off));
    let adzs = split_at_bounds(adz, &bounds(&inp.aux.off));
    let parts: Vec<RowSums> = gs
        .into_par_iter()
        .zip(ds)
        .zip(dzs)
        .zip(adzs)
        .enumerate()
        .map(|(b, (((g, df), dz), adz))| {
            let mut s = RowSums {
                e_sum: vec![0.0; d],
                ..RowSums::default()
            };
            row_block(inp, starts[b], g, df, dz, adz, &mut s);
            s
        })
        .collect();
    let mut total = RowSums {
        e_sum: vec![0.0; d],
        ..RowSums::default()
    };
    for p in parts {
        total.sse += p.sse;
        total.aux_sse += p.aux_sse;
        total
            .e_sum
            .iter_mut()
            .zip(&p.e_sum)
            .for_each(|(a, b)| *a += b);
    }
    total
}

/// One contribution to a latent's gradients: dW_dec[j] += coef * src_row, dW_enc^T[j] += dz * xc_row.
#[derive(Clone, Copy, Debug, Default)]
pub struct Entry {
    /// Row of the upstream-gradient buffer (g rows first, then AuxK rows).
    pub src: u32,
    /// Row of xc.
    pub row: u32,
    /// Coefficient of the upstream row.
    pub coef: f32,
    /// dL/dz of this entry.
    pub dz: f32,
}

/// Latent-major view of the active entries (the transpose of the row sets).
#[derive(Default)]
pub struct ByLatent {
    /// Offsets per latent, d_sae + 1 of them.
    pub off: Vec<usize>,
    /// Entries, grouped by latent, in row order (main entries before AuxK entries of a row set).
    pub entries: Vec<Entry>,
    /// Main (non-AuxK) entries per latent: the firing counts.
    pub fired: Vec<u32>,
}

/// One row set's contribution to the transpose: (sets, dz, coef scale, dz scale, src row offset).
pub struct Part<'a> {
    /// The row sets.
    pub sets: &'a RowSets,
    /// dz per entry (before `dz_scale`).
    pub dz: &'a [f32],
    /// Multiplies the activation value to give the entry's coefficient.
    pub coef_scale: f32,
    /// Multiplies dz.
    pub dz_scale: f32,
    /// Added to the row index to find the upstream-gradient row.
    pub src_offset: u32,
    /// With (widths, stride): latent j of group s (`widths[s-1] <= j < widths[s]`) reads its
    /// upstream row s * stride further on (Matryoshka's per-prefix rows).
    pub by_group: Option<(&'a [usize], u32)>,
}

impl ByLatent {
    /// Counting-sort transpose of `parts` (the first one gives the firing counts).
    pub fn build(&mut self, d_sae: usize, parts: &[Part<'_>]) {
        self.fired.clear();
        self.fired.resize(d_sae, 0);
        let mut cnt = vec![0usize; d_sae + 1];
        for (n, p) in parts.iter().enumerate() {
            for &j in &p.sets.idx {
                cnt[j as usize + 1] += 1;
                if n == 0 {
                    self.fired[j as usize] += 1;
                }
            }
        }
        for j in 0..d_sae {
            cnt[j + 1] += cnt[j];
        }
        self.off.clear();
        self.off.extend_from_slice(&cnt);
        self.entries.clear();
        self.entries.resize(cnt[d_sae], Entry::default());
        for p in parts {
            for r in 0..p.sets.rows() {
                let (a, b) = (p.sets.off[r], p.sets.off[r + 1]);
                for n in a..b {
                    let j = p.sets.idx[n] as usize;
                    let group = match p.by_group {
                        Some((widths, stride)) => {
                            widths.partition_point(|&w| w <= j) as u32 * stride
                        }
                        None => 0,
                    };
                    self.entries[cnt[j]] = Entry {
                        src: r as u32 + p.src_offset + group,
                        row: r as u32,
                        coef: p.sets.val[n] * p.coef_scale,
                        dz: p.dz[n] * p.dz_scale,
                    };
                    cnt[j] += 1;
                }
            }
        }
    }
}

/// Latents per parallel task of the latent pass.
const LATENT_BLOCK: usize = 16;

simd_dispatch! {
    /// Gradients of latents `j0..` (one block): rows of `dw_dec` / `dw_enc_t` and `db_enc`.
    fn latent_block(
        bl: &ByLatent, j0: usize, src: &[f32], xc: &[f32], w: Widths,
        dw_dec: &mut [f32], dw_enc_t: &mut [f32], db_enc: &mut [f32],
    ) {
        let (d, dx) = (w.src, w.xc);
        for (i, ((gw, ge), gb)) in dw_dec
            .chunks_exact_mut(d)
            .zip(dw_enc_t.chunks_exact_mut(dx))
            .zip(db_enc.iter_mut())
            .enumerate()
        {
            let j = j0 + i;
            gw.iter_mut().for_each(|v| *v = 0.0);
            ge.iter_mut().for_each(|v| *v = 0.0);
            let mut b = 0f32;
            let ents = &bl.entries[bl.off[j]..bl.off[j + 1]];
            let mut quads = ents.chunks_exact(4);
            for q in &mut quads {
                let s4 = std::array::from_fn(|i| &src[q[i].src as usize * d..][..d]);
                let x4 = std::array::from_fn(|i| &xc[q[i].row as usize * dx..][..dx]);
                axpy4(gw, std::array::from_fn(|i| q[i].coef), s4);
                axpy4(ge, std::array::from_fn(|i| q[i].dz), x4);
                b += (q[0].dz + q[1].dz) + (q[2].dz + q[3].dz);
            }
            for e in quads.remainder() {
                let s = e.src as usize * d;
                axpy(gw, e.coef, &src[s..s + d]);
                let r = e.row as usize * dx;
                axpy(ge, e.dz, &xc[r..r + dx]);
                b += e.dz;
            }
            *gb = b;
        }
    }
}

/// Row widths of the latent pass: the upstream rows (= decoder rows, d_out) and the encoder's
/// input rows (d_in); equal for an autoencoder.
#[derive(Clone, Copy, Debug)]
pub struct Widths {
    /// Width of the upstream rows and of dW_dec's rows.
    pub src: usize,
    /// Width of the `xc` rows and of dW_enc^T's rows.
    pub xc: usize,
}

/// Fills dW_dec [d_sae, d_out], dW_enc^T [d_sae, d_in] and db_enc from the transposed entries;
/// `src` holds the upstream rows that `Entry::src` indexes, `xc` the encoder's inputs.
pub fn latent_pass(
    bl: &ByLatent,
    src: &[f32],
    xc: &[f32],
    w: Widths,
    dw_dec: &mut [f32],
    dw_enc_t: &mut [f32],
    db_enc: &mut [f32],
) {
    let lb = LATENT_BLOCK;
    dw_dec
        .par_chunks_mut(lb * w.src)
        .zip(dw_enc_t.par_chunks_mut(lb * w.xc))
        .zip(db_enc.par_chunks_mut(lb))
        .enumerate()
        .for_each(|(b, ((gw, ge), gb))| latent_block(bl, b * lb, src, xc, w, gw, ge, gb));
}

simd_dispatch! {
    /// dW_dec rows of latents `j0..` (one block) from the transposed entries.
    fn decoder_block(bl: &ByLatent, j0: usize, src: &[f32], d: usize, dw_dec: &mut [f32]) {
        for (i, gw) in dw_dec.chunks_exact_mut(d).enumerate() {
            let j = j0 + i;
            gw.iter_mut().for_each(|v| *v = 0.0);
            let ents = &bl.entries[bl.off[j]..bl.off[j + 1]];
            let mut quads = ents.chunks_exact(4);
            for q in &mut quads {
                let s4 = std::array::from_fn(|i| &src[q[i].src as usize * d..][..d]);
                axpy4(gw, std::array::from_fn(|i| q[i].coef), s4);
            }
            for e in quads.remainder() {
                let s = e.src as usize * d;
                axpy(gw, e.coef, &src[s..s + d]);
            }
        }
    }
}

/// The decoder half of [`latent_pass`]: fills dW_dec [d_sae, d] alone (rows of width `d`), for a
/// caller that finds the encoder's gradients by a GEMM.
pub fn decoder_pass(bl: &ByLatent, src: &[f32], d: usize, dw_dec: &mut [f32]) {
    let lb = LATENT_BLOCK;
    dw_dec
        .par_chunks_mut(lb * d)
        .enumerate()
        .for_each(|(b, gw)| decoder_block(bl, b * lb, src, d, gw));
}
