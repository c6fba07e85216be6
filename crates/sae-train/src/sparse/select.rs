//! Which latents fire, fused with the bias and the ReLU, read straight from the encoder GEMM output
//! (z without b_enc): per-row TopK and AuxK among dead latents (BatchTopK's batch-wide selection is
//! in `batch.rs`). Rows are processed in parallel blocks; every result is independent of the
//! thread count.
//!
//! Tie rule everywhere: among equal values the lower flat index (row-major) wins, as in the plain
//! reference selection of [`crate::select`].

use rayon::prelude::*;

use crate::vecops::{collect_above, mask16_above, simd_dispatch, Isa};

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

/// The current best candidates of a row: value bits (positive floats order like their bits) and
/// latent indices, side by side so that the minimum is a vectorised u32 reduction.
struct Best {
    bits: Vec<u32>,
    idx: Vec<u32>,
}

impl Best {
    fn with_capacity(k: usize) -> Best {
        Best {
            bits: Vec::with_capacity(k),
            idx: Vec::with_capacity(k),
        }
    }

    /// Position of the entry to evict: the smallest value, among equal ones the highest index.
    #[inline(always)]
    fn weakest(&self) -> (usize, f32) {
        let m = self.bits.iter().copied().min().unwrap_or(0);
        let worst = self
            .bits
            .iter()
            .zip(&self.idx)
            .map(|(&b, &i)| if b == m { i } else { 0 })
            .max()
            .unwrap_or(0);
        let pos = self
            .bits
            .iter()
            .zip(&self.idx)
            .position(|(&b, &i)| b == m && i == worst)
            .unwrap_or(0);
        (pos, f32::from_bits(m))
    }
}

/// The `k` largest positive values of `z + bias` (all positive ones when fewer; ties to the lower
/// index) into `best` (unordered). Values are scanned 16 at a time and a block is looked at only
/// when one of its values beats the current k-th largest.
#[inline(always)]
fn topk_row(z: &[f32], bias: &[f32], k: usize, best: &mut Best) {
    best.bits.clear();
    best.idx.clear();
    if k == 0 {
        return;
    }
    const W: usize = 16;
    let n = z.len().min(bias.len());
    let isa = Isa::detect();
    let mut thr = 0f32;
    let mut evict = 0usize;
    let mut offer = |best: &mut Best, v: f32, j: usize, thr: &mut f32| {
        if best.bits.len() < k {
            best.bits.push(v.to_bits());
            best.idx.push(j as u32);
            if best.bits.len() < k {
                return;
            }
        } else {
            best.bits[evict] = v.to_bits();
            best.idx[evict] = j as u32;
        }
        (evict, *thr) = best.weakest();
    };
    let blocks = n / W;
    for b in 0..blocks {
        let zc = &z[b * W..(b + 1) * W];
        let bc = &bias[b * W..(b + 1) * W];
        let mut m = mask16_above(isa, zc, bc, thr);
        while m != 0 {
            let l = m.trailing_zeros() as usize;
            m &= m - 1;
            // The bound rises as values enter: test again.
            let v = zc[l] + bc[l];
            if v > thr {
                offer(best, v, b * W + l, &mut thr);
            }
        }
    }
    for j in blocks * W..n {
        let v = z[j] + bias[j];
        if v > thr {
            offer(best, v, j, &mut thr);
        }
    }
}

/// Candidates of a row above `lo` (>= 0; 0 collects every positive value) are collected as keys
/// (value bits, then the complement of the index: a larger key is a larger value or an equal value
/// at a lower index); when there are
/// at least `k` of them the `k` largest keys are exactly the row's TopK. Returns the k-th value,
/// or None (fewer candidates: the caller scans again without a bound).
#[inline(always)]
fn topk_row_above(
    z: &[f32],
    bias: &[f32],
    k: usize,
    lo: f32,
    cand: &mut Cand,
    best: &mut Best,
) -> Option<f32> {
    cand.val.clear();
    cand.idx.clear();
    collect_above(Isa::detect(), z, bias, lo, &mut cand.val, &mut cand.idx);
    let key = |v: f32, j: u32| ((v.to_bits() as u64) << 32) | (u32::MAX - j) as u64;
    let Cand {
        keys: cand,
        val,
        idx,
    } = cand;
    cand.clear();
    cand.extend(val.iter().zip(idx.iter()).map(|(&v, &j)| key(v, j)));
    if cand.len() < k || k == 0 {
        return None;
    }
    if cand.len() > k {
        cand.select_nth_unstable_by(k - 1, |a, b| b.cmp(a));
    }
    best.bits.clear();
    best.idx.clear();
    for &c in &cand[..k] {
        best.bits.push((c >> 32) as u32);
        best.idx.push(u32::MAX - c as u32);
    }
    Some(f32::from_bits((cand[k - 1] >> 32) as u32))
}

/// A row's candidates: keys (value bits, then the complement of the index) and the collected
/// values and indices they are made from.
#[derive(Default)]
struct Cand {
    keys: Vec<u64>,
    val: Vec<f32>,
    idx: Vec<u32>,
}

/// Rows at most this long are selected from all their positive values when the hint fails.
const SHORT_ROW: usize = 512;

/// TopK of a row from all its positive values (every one of them when there are at most k).
#[inline(always)]
fn topk_row_positive(z: &[f32], bias: &[f32], k: usize, cand: &mut Cand, best: &mut Best) {
    if topk_row_above(z, bias, k, 0.0, cand, best).is_some() {
        return;
    }
    // Fewer than k positive values (or k = 0): all of them, none when k = 0.
    best.bits.clear();
    best.idx.clear();
    if k > 0 {
        best.bits.extend(cand.val.iter().map(|v| v.to_bits()));
        best.idx.extend_from_slice(&cand.idx);
    }
}

/// A row's candidates are collected above this fraction of the previous row's k-th value.
const HINT_MARGIN: f32 = 0.8;

/// TopK of one row into `best`, first above `HINT_MARGIN` x `hint` (the previous row's k-th value:
/// rows are alike, so one thresholded pass usually finds every candidate), else by the eviction
/// scan; `hint` becomes this row's k-th value (0 when the row has fewer than k positive values).
#[inline(always)]
fn topk_row_hinted(
    z: &[f32],
    bias: &[f32],
    k: usize,
    hint: &mut f32,
    cand: &mut Cand,
    best: &mut Best,
) {
    let lo = *hint * HINT_MARGIN;
    let found = if lo > 0.0 {
        topk_row_above(z, bias, k, lo, cand, best)
    } else {
        None
    };
    if let Some(t) = found {
        *hint = t;
        return;
    }
    if z.len() <= SHORT_ROW {
        // A short row (such as the dead latents' values for AuxK, often fewer positive than k):
        // all its positive values are few enough to collect and select among.
        topk_row_positive(z, bias, k, cand, best);
    } else {
        topk_row(z, bias, k, best);
    }
    *hint = if best.bits.len() == k && k > 0 {
        best.weakest().1
    } else {
        0.0
    };
}

simd_dispatch! {
    /// One block of rows: TopK of every row into fixed-stride slots, and AuxK among `dead` latents.
    fn select_block(
        z: &[f32], bias: &[f32], k: usize, dead: &[u32], k_aux: usize,
        cnt: &mut [u32], idx: &mut [u32], val: &mut [f32],
        acnt: &mut [u32], aidx: &mut [u32], aval: &mut [f32],
    ) {
        let d_sae = bias.len();
        let mut best = Best::with_capacity(k.max(k_aux));
        let mut cand = Cand::default();
        let (mut hint, mut ahint) = (0f32, 0f32);
        let mut gz = vec![0f32; dead.len()];
        let mut gb = vec![0f32; dead.len()];
        for (i, &j) in dead.iter().enumerate() {
            gb[i] = bias[j as usize];
        }
        for (r, zr) in z.chunks_exact(d_sae).enumerate() {
            topk_row_hinted(zr, bias, k, &mut hint, &mut cand, &mut best);
            cnt[r] = best.idx.len() as u32;
            for (n, (&j, &b)) in best.idx.iter().zip(&best.bits).enumerate() {
                idx[r * k + n] = j;
                val[r * k + n] = f32::from_bits(b);
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
    }
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

/// Per-row TopK of `z + bias` (z: [rows, d_sae] without the bias) into `act`, and AuxK among the
/// `dead` latents into `aux` (empty when `k_aux` is 0 or nothing is dead).
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
) {
    let d_sae = bias.len();
    let rows = z.len() / d_sae.max(1);
    let k = k.min(d_sae);
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
    z.par_chunks(blk * d_sae)
        .zip(s.cnt.par_chunks_mut(blk))
        .zip(s.idx.par_chunks_mut(blk * ks))
        .zip(s.val.par_chunks_mut(blk * ks))
        .zip(s.acnt.par_chunks_mut(blk))
        .zip(s.aidx.par_chunks_mut(blk * kas))
        .zip(s.aval.par_chunks_mut(blk * kas))
        .for_each(|((((((zb, c), i), v), ac), ai), av)| {
            select_block(zb, bias, k, dead, k_aux, c, i, v, ac, ai, av);
        });
    act.compact_from(k, &s.cnt, &s.idx, &s.val);
    aux.compact_from(k_aux, &s.acnt, &s.aidx, &s.aval);
}

/// AuxK among the `dead` latents alone into `aux` (the rows' main TopK is chosen elsewhere, as
/// BatchTopK's batch threshold does).
pub fn select_auxk(
    z: &[f32],
    bias: &[f32],
    dead: &[u32],
    k_aux: usize,
    s: &mut SelectScratch,
    aux: &mut RowSets,
) {
    select_topk(z, bias, 0, dead, k_aux, s, &mut RowSets::default(), aux);
}
