//! Which latents fire in the threshold architectures, read straight from the encoder GEMM output
//! (z without b_enc): ReLU (z + b > 0) and JumpReLU (z + b > theta_j), plus, for JumpReLU, the
//! entries inside the straight-through kernel window |z + b - theta_j| / eps < 1/2 that the
//! threshold gradient needs. One scan per row, 16 values at a time against a per-latent lower
//! bound; rows in parallel blocks, results in row order.

use rayon::prelude::*;

use super::select::{RowSets, ROW_BLOCK};
use crate::vecops::{mask16, simd_dispatch, Isa};

/// The threshold rule of a row scan.
#[derive(Clone, Copy, Debug)]
pub struct Rule<'a> {
    /// JumpReLU thresholds theta [d_sae] (None: ReLU, threshold 0).
    pub theta: Option<&'a [f32]>,
    /// JumpReLU kernel width eps.
    pub eps: f32,
    /// Candidates must exceed these [d_sae] (0 for ReLU, theta - eps for JumpReLU, theta when the
    /// window is not collected).
    pub lower: &'a [f32],
    /// Collect the kernel-window entries (JumpReLU with a narrow kernel).
    pub window: bool,
}

/// One block's entries: per row counts, then (latent, value) in row order.
#[derive(Default)]
struct Part {
    cnt: Vec<u32>,
    idx: Vec<u32>,
    val: Vec<f32>,
    wcnt: Vec<u32>,
    widx: Vec<u32>,
    wval: Vec<f32>,
}

simd_dispatch! {
    fn scan_block(z: &[f32], bias: &[f32], rule: &Rule<'_>, part: &mut Part) {
        const W: usize = 16;
        let d = bias.len();
        let lower = rule.lower;
        let isa = Isa::detect();
        for zr in z.chunks_exact(d) {
            let (n0, w0) = (part.idx.len(), part.widx.len());
            let visit = |j: usize, v: f32, part: &mut Part| match rule.theta {
                None => {
                    part.idx.push(j as u32);
                    part.val.push(v);
                }
                Some(t) => {
                    if v > t[j] {
                        part.idx.push(j as u32);
                        part.val.push(v);
                    }
                    if rule.window && ((v - t[j]) / rule.eps).abs() < 0.5 {
                        part.widx.push(j as u32);
                        part.wval.push(v);
                    }
                }
            };
            let blocks = d / W;
            for b in 0..blocks {
                let (zc, bc, lc) = (&zr[b * W..][..W], &bias[b * W..][..W], &lower[b * W..][..W]);
                let mut m = mask16(isa, zc, bc, lc);
                while m != 0 {
                    let l = m.trailing_zeros() as usize;
                    m &= m - 1;
                    visit(b * W + l, zc[l] + bc[l], part);
                }
            }
            for j in blocks * W..d {
                let v = zr[j] + bias[j];
                if v > lower[j] {
                    visit(j, v, part);
                }
            }
            part.cnt.push((part.idx.len() - n0) as u32);
            part.wcnt.push((part.widx.len() - w0) as u32);
        }
    }
}

/// Fills `act` with the firing entries and `win` with the kernel-window entries (JumpReLU only).
pub fn select_threshold(
    z: &[f32],
    bias: &[f32],
    rule: &Rule<'_>,
    act: &mut RowSets,
    win: &mut RowSets,
) {
    let d = bias.len();
    let parts: Vec<Part> = z
        .par_chunks(ROW_BLOCK * d)
        .map(|zb| {
            let mut p = Part::default();
            scan_block(zb, bias, rule, &mut p);
            p
        })
        .collect();
    for (sets, window) in [(act, false), (win, true)] {
        sets.off.clear();
        sets.idx.clear();
        sets.val.clear();
        sets.off.push(0);
        for p in &parts {
            let (cnt, idx, val) = if window {
                (&p.wcnt, &p.widx, &p.wval)
            } else {
                (&p.cnt, &p.idx, &p.val)
            };
            for &c in cnt {
                let last = *sets.off.last().expect("starts with 0");
                sets.off.push(last + c as usize);
            }
            sets.idx.extend_from_slice(idx);
            sets.val.extend_from_slice(val);
        }
    }
}

simd_dispatch! {
    /// (firing, inside the kernel window) counts of one block of rows.
    fn count_block(z: &[f32], bias: &[f32], theta: &[f32], eps: f32, jump: bool) -> (usize, usize) {
        let d = bias.len();
        let (mut on, mut win) = (0usize, 0usize);
        for zr in z.chunks_exact(d) {
            for j in 0..d {
                let v = zr[j] + bias[j];
                on += (v > theta[j]) as usize;
                if jump {
                    win += (((v - theta[j]) / eps).abs() < 0.5) as usize;
                }
            }
        }
        (on, win)
    }
}

/// Fractions of the entries that fire and that sit inside JumpReLU's kernel window, from this
/// batch alone (so that the path a step takes never depends on the steps before: a resumed run
/// repeats it exactly). `theta` is 0 for ReLU.
pub fn fractions(z: &[f32], bias: &[f32], theta: &[f32], eps: f32, jump: bool) -> (f64, f64) {
    let d = bias.len();
    let (on, win) = z
        .par_chunks(ROW_BLOCK * d)
        .map(|zb| count_block(zb, bias, theta, eps, jump))
        .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let n = z.len().max(1) as f64;
    (on as f64 / n, win as f64 / n)
}
