//! Which latents fire, fused with the bias and the ReLU, read straight from the encoder GEMM output
//! (z without b_enc): per-row TopK and AuxK among dead latents (BatchTopK's batch-wide selection is
//! in `batch.rs`). Rows are processed in parallel blocks; every result is independent of the
//! thread count.
//!
//! Tie rule everywhere: among equal values the lower flat index (row-major) wins, as in the plain
//! reference selection of [`crate::select`].

use rayon::prelude::*;

use super::passes::split_at_bounds;
use super::row_topk::{topk_row_hinted, Best, Cand};
use crate::vecops::simd_dispatch;

/// Active latents of every row in CSR form: row r owns `idx[off[r]..off[r+1]]`, values `val[..]`.
#[derive(Clone, Debug, Default)]
pub struct RowSets {
    /// Row offsets, rows + 1 of them.
    pub off: Vec<usize>,
    /// Latent indices.
    pub idx: Vec<u32>,
    /// Activation values (z + b_enc) of those latents.
    pub val: Vec<f32>,
}

impl RowSets {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.off.len().saturating_sub(1)
    }

    /// Entries of row r.
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.off[r], self.off[r + 1]);
        (&self.idx[a..b], &self.val[a..b])
    }

    /// Number of entries.
    pub fn nnz(&self) -> usize {
        self.idx.len()
    }

    /// Fills from fixed-stride per-row slots (`cnt[r]` used entries of `stride`).
    fn compact_from(&mut self, stride: usize, cnt: &[u32], idx: &[u32], val: &[f32]) {
        self.off.clear();
        self.idx.clear();
        self.val.clear();
        self.off.push(0);
        for (r, &c) in cnt.iter().enumerate() {
            let s = r * stride;
            self.idx.extend_from_slice(&idx[s..s + c as usize]);
            self.val.extend_from_slice(&val[s..s + c as usize]);
            self.off.push(self.idx.len());
        }
    }
}

/// Rows per parallel task.
pub(crate) const ROW_BLOCK: usize = 32;

/// The dense AuxK block filled during the selection, while each row is in cache: at row r and
/// position n the value of z + b_enc at latent `dead[n]` when it is among the row's k_aux largest
/// positive dead values (ties to the lower index), else 0.
pub struct DenseBlock<'a> {
    /// The dead latents (increasing), one column each.
    pub dead: &'a [u32],
    /// The block, [rows, dead.len()].
    pub out: &'a mut [f32],
}

/// One row block's share of the dense AuxK block: the dead latents, their k_aux and the block's
/// rows of it (no dead latents: nothing to fill).
pub(super) type DenseRows<'a, 'b> = (&'a [u32], usize, &'b mut [f32]);

/// What one row of the dense AuxK block needs besides the row: the selection's candidates and
/// its hint (the previous row's k_aux-th value) and zeros for the bias of the gathered values.
pub(super) struct DenseRow {
    cand: Cand,
    best: Best,
    hint: f32,
    zeros: Vec<f32>,
}

impl DenseRow {
    /// For rows cut back to `k_aux` entries.
    pub(super) fn new(k_aux: usize) -> DenseRow {
        DenseRow {
            cand: Cand::default(),
            best: Best::with_capacity(k_aux),
            hint: 0.0,
            zeros: Vec::new(),
        }
    }

    /// Row `out` of the block from the row's pre-activations `zr`: every positive dead value
    /// (most rows have at most `k_aux`), cut back to the `k_aux` largest by the row selection when
    /// there are more. Returns how many are kept.
    #[inline(always)]
    pub(super) fn fill(
        &mut self,
        zr: &[f32],
        bias: &[f32],
        dead: &[u32],
        k_aux: usize,
        out: &mut [f32],
    ) -> usize {
        let mut pos = 0;
        for (o, &j) in out.iter_mut().zip(dead) {
            let v = zr[j as usize] + bias[j as usize];
            *o = if v > 0.0 { v } else { 0.0 };
            pos += (v > 0.0) as usize;
        }
        if pos <= k_aux {
            return pos;
        }
        self.zeros.resize(out.len(), 0.0);
        let DenseRow {
            cand,
            best,
            hint,
            zeros,
        } = self;
        topk_row_hinted(out, zeros, k_aux, hint, cand, best);
        out.iter_mut().for_each(|v| *v = 0.0);
        for (&n, &b) in best.idx.iter().zip(&best.bits) {
            out[n as usize] = f32::from_bits(b);
        }
        best.idx.len()
    }
}

simd_dispatch! {
    /// One block of rows: TopK of every row into fixed-stride slots, AuxK among `dead` latents,
    /// and with `dense` = (dead latents, their k_aux, block rows) the rows of the dense AuxK block;
    /// returns how many entries that block keeps.
    fn select_block(
        z: &[f32], bias: &[f32], k: usize, dead: &[u32], k_aux: usize,
        cnt: &mut [u32], idx: &mut [u32], val: &mut [f32],
        acnt: &mut [u32], aidx: &mut [u32], aval: &mut [f32],
        dense: DenseRows<'_, '_>,
    ) -> usize {
        let d_sae = bias.len();
        let mut best = Best::with_capacity(k.max(k_aux));
        let mut cand = Cand::default();
        let (mut hint, mut ahint) = (0f32, 0f32);
        let mut gz = vec![0f32; dead.len()];
        let mut gb = vec![0f32; dead.len()];
        for (i, &j) in dead.iter().enumerate() {
            gb[i] = bias[j as usize];
        }
        let (ddead, dense_k, dout) = dense;
        let mut kept = 0;
        let mut drow = DenseRow::new(dense_k);
        for (r, zr) in z.chunks_exact(d_sae).enumerate() {
            topk_row_hinted(zr, bias, k, &mut hint, &mut cand, &mut best);
            cnt[r] = best.idx.len() as u32;
            for (n, (&j, &b)) in best.idx.iter().zip(&best.bits).enumerate() {
                idx[r * k + n] = j;
                val[r * k + n] = f32::from_bits(b);
            }
            if !ddead.is_empty() {
                let nd = ddead.len();
                let out = &mut dout[r * nd..(r + 1) * nd];
                kept += drow.fill(zr, bias, ddead, dense_k, out);
            }
            if k_aux == 0 || dead.is_empty() {
                continue;
            }
            for (g, &j) in gz.iter_mut().zip(dead) {
                *g = zr[j as usize];
            }
            topk_row_hinted(&gz, &gb, k_aux, &mut ahint, &mut cand, &mut best);
            acnt[r] = best.idx.len() as u32;
            for (n, (&i, &b)) in best.idx.iter().zip(&best.bits).enumerate() {
                aidx[r * k_aux + n] = dead[i as usize];
                aval[r * k_aux + n] = f32::from_bits(b);
            }
        }
        kept
    }
}

/// The dead latents of `dense` (none without one) and its block split into the rows of each
/// block of `blk` rows (empty slices without one), for a parallel pass over `rows` rows.
pub(super) fn dense_parts<'a>(
    dense: Option<DenseBlock<'a>>,
    rows: usize,
    blk: usize,
) -> (&'a [u32], Vec<&'a mut [f32]>) {
    let (dead, out): (&[u32], &mut [f32]) = match dense {
        Some(DenseBlock { dead, out }) => (dead, out),
        None => (&[], &mut []),
    };
    let nd = dead.len();
    assert_eq!(
        out.len(),
        rows * nd,
        "the dense AuxK block is [rows, n_dead]"
    );
    let bounds: Vec<usize> = (0..=rows.div_ceil(blk))
        .map(|b| (b * blk).min(rows) * nd)
        .collect();
    (dead, split_at_bounds(out, &bounds))
}

/// Scratch of the row selection (kept between steps).
#[derive(Default)]
pub struct SelectScratch {
    cnt: Vec<u32>,
    idx: Vec<u32>,
    val: Vec<f32>,
    acnt: Vec<u32>,
    aidx: Vec<u32>,
    aval: Vec<f32>,
}

/// Per-row TopK of `z + bias` (z: [rows, d_sae] without the bias) into `act`, AuxK among the
/// `dead` latents into `aux` (empty when `k_aux` is 0 or nothing is dead) and, with `dense`, the
/// dense AuxK block (each row's `k_aux` largest positive values at `dense.dead`); returns how many
/// entries the dense block keeps (0 without one).
#[allow(clippy::too_many_arguments)]
pub fn select_topk(
    z: &[f32],
    bias: &[f32],
    k: usize,
    dead: &[u32],
    k_aux: usize,
    s: &mut SelectScratch,
    act: &mut RowSets,
    aux: &mut RowSets,
    dense: Option<DenseBlock<'_>>,
) -> usize {
    let d_sae = bias.len();
    let rows = z.len() / d_sae.max(1);
    let k = k.min(d_sae);
    let dense_k = k_aux;
    let k_aux = if dead.is_empty() {
        0
    } else {
        k_aux.min(dead.len())
    };
    // Slots of at least one entry per row, so that every buffer splits into the same blocks.
    let (ks, kas) = (k.max(1), k_aux.max(1));
    s.cnt.clear();
    s.cnt.resize(rows, 0);
    s.idx.resize(rows * ks, 0);
    s.val.resize(rows * ks, 0.0);
    s.acnt.clear();
    s.acnt.resize(rows, 0);
    s.aidx.resize(rows * kas, 0);
    s.aval.resize(rows * kas, 0.0);
    let blk = ROW_BLOCK;
    let (ddead, douts) = dense_parts(dense, rows, blk);
    let kept = z
        .par_chunks(blk * d_sae)
        .zip(s.cnt.par_chunks_mut(blk))
        .zip(s.idx.par_chunks_mut(blk * ks))
        .zip(s.val.par_chunks_mut(blk * ks))
        .zip(s.acnt.par_chunks_mut(blk))
        .zip(s.aidx.par_chunks_mut(blk * kas))
        .zip(s.aval.par_chunks_mut(blk * kas))
        .zip(douts)
        .map(|(((((((zb, c), i), v), ac), ai), av), dz)| {
            let dense = (ddead, dense_k, dz);
            select_block(zb, bias, k, dead, k_aux, c, i, v, ac, ai, av, dense)
        })
        .sum();
    act.compact_from(k, &s.cnt, &s.idx, &s.val);
    aux.compact_from(k_aux, &s.acnt, &s.aidx, &s.aval);
    kept
}

/// AuxK among the `dead` latents alone into `aux`, or with `dense` into the dense AuxK block
/// (the rows' main TopK is chosen elsewhere, as BatchTopK's batch threshold does); returns what
/// [`select_topk`] does.
pub fn select_auxk(
    z: &[f32],
    bias: &[f32],
    dead: &[u32],
    k_aux: usize,
    s: &mut SelectScratch,
    aux: &mut RowSets,
    dense: Option<DenseBlock<'_>>,
) -> usize {
    let mut none = RowSets::default();
    select_topk(z, bias, 0, dead, k_aux, s, &mut none, aux, dense)
}
