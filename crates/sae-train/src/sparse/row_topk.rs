//! One row's TopK, the primitive of every row selection in `select.rs`: the k largest positive
//! values of z + bias with ties to the lower index, found by one thresholded pass above a hint
//! from the row before (rows are alike), else by an eviction scan.

use crate::vecops::{collect_above, mask16_above, Isa};

/// The current best candidates of a row: value bits (positive floats order like their bits) and
/// latent indices, side by side so that the minimum is a vectorised u32 reduction.
pub(super) struct Best {
    pub(super) bits: Vec<u32>,
    pub(super) idx: Vec<u32>,
}

impl Best {
    pub(super) fn with_capacity(k: usize) -> Best {
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
pub(super) struct Cand {
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
pub(super) fn topk_row_hinted(
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
