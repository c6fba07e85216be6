//! Which latents fire in the threshold architectures, read straight from the encoder GEMM output
//! (z without b_enc): ReLU (z + b > 0) and JumpReLU (z + b > theta_j), plus, for JumpReLU, the
//! entries inside the straight-through kernel window |z + b - theta_j| / eps < 1/2 that the
//! threshold gradient needs. One scan per row, 16 values at a time against a per-latent lower
//! bound; rows in parallel blocks, results in row order.

use rayon::prelude::*;

use super::select::{RowSets, ROW_BLOCK};
use crate::vecops::{mask16, simd_dispatch, window16, Isa};

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
    merge(&parts, act, false);
    merge(&parts, win, true);
}

/// The blocks' entries (the window ones with `window`) into `sets`, in row order.
fn merge(parts: &[Part], sets: &mut RowSets, window: bool) {
    sets.off.clear();
    sets.idx.clear();
    sets.val.clear();
    sets.off.push(0);
    for p in parts {
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

/// What [`count_and_fire`] found.
#[derive(Clone, Copy, Debug)]
pub struct Counted {
    /// Fraction of the entries that fire.
    pub density: f64,
    /// Fraction inside JumpReLU's kernel window (0 for ReLU).
    pub window: f64,
    /// Whether the firing entries were all collected (a block stops collecting once more than
    /// [`COLLECT_LIMIT`] of its entries fire: the dense step runs then and needs none).
    pub complete: bool,
}

/// A block collects its firing entries while at most this fraction of them fire.
pub const COLLECT_LIMIT: f64 = 0.1;

simd_dispatch! {
    /// One block of rows: (firing, inside the kernel window) counts, and the firing entries
    /// z + b > theta_j into `part` while they stay under `limit`; returns whether all were kept.
    fn count_fire_block(
        z: &[f32], bias: &[f32], theta: &[f32], eps: f32, jump: bool, limit: usize,
        part: &mut Part, counts: &mut (usize, usize),
    ) -> bool {
        const W: usize = 16;
        let d = bias.len();
        let isa = Isa::detect();
        let (mut on, mut win) = (0usize, 0usize);
        let mut keep = true;
        for zr in z.chunks_exact(d) {
            let n0 = part.idx.len();
            let blocks = d / W;
            for b in 0..blocks {
                let (zc, bc, tc) = (&zr[b * W..][..W], &bias[b * W..][..W], &theta[b * W..][..W]);
                let mut m = mask16(isa, zc, bc, tc);
                on += m.count_ones() as usize;
                if jump {
                    win += window16(isa, zc, bc, tc, eps).count_ones() as usize;
                }
                while keep && m != 0 {
                    let l = m.trailing_zeros() as usize;
                    m &= m - 1;
                    part.idx.push((b * W + l) as u32);
                    part.val.push(zc[l] + bc[l]);
                }
            }
            for j in blocks * W..d {
                let v = zr[j] + bias[j];
                if v > theta[j] {
                    on += 1;
                    if keep {
                        part.idx.push(j as u32);
                        part.val.push(v);
                    }
                }
                if jump {
                    win += (((v - theta[j]) / eps).abs() < 0.5) as usize;
                }
            }
            part.cnt.push((part.idx.len() - n0) as u32);
            keep = keep && part.idx.len() <= limit;
        }
        *counts = (on, win);
        keep
    }
}

/// Fractions of the entries that fire and that sit inside JumpReLU's kernel window, from this
/// batch alone (so that the path a step takes never depends on the steps before: a resumed run
/// repeats it exactly), and, in the same read of z, the firing entries z + b > theta_j into `act` (what
/// the scan of [`select_threshold`] with lower = theta and no window collects), unless
/// `complete` comes back false. `theta` is 0 for ReLU.
pub fn count_and_fire(
    z: &[f32],
    bias: &[f32],
    theta: &[f32],
    eps: f32,
    jump: bool,
    act: &mut RowSets,
) -> Counted {
    let d = bias.len();
    let limit = (COLLECT_LIMIT * (ROW_BLOCK * d) as f64) as usize;
    let parts: Vec<(Part, (usize, usize), bool)> = z
        .par_chunks(ROW_BLOCK * d)
        .map(|zb| {
            let (mut p, mut c) = (Part::default(), (0, 0));
            let kept = count_fire_block(zb, bias, theta, eps, jump, limit, &mut p, &mut c);
            (p, c, kept)
        })
        .collect();
    let (mut on, mut win, mut complete) = (0usize, 0usize, true);
    for (_, c, kept) in &parts {
        on += c.0;
        win += c.1;
        complete &= kept;
    }
    let n = z.len().max(1) as f64;
    let parts: Vec<Part> = parts.into_iter().map(|p| p.0).collect();
    if complete {
        merge(&parts, act, false);
    }
    Counted {
        density: on as f64 / n,
        window: win as f64 / n,
        complete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The counts and firing entries by a plain loop (no code shared with the scan).
    fn plain(z: &[f32], b: &[f32], t: &[f32], eps: f32) -> (usize, usize, Vec<Vec<(u32, f32)>>) {
        let d = b.len();
        let (mut on, mut win, mut rows) = (0, 0, Vec::new());
        for zr in z.chunks(d) {
            let mut row = Vec::new();
            for j in 0..d {
                let v = zr[j] + b[j];
                if v > t[j] {
                    on += 1;
                    row.push((j as u32, v));
                }
                if ((v - t[j]) / eps).abs() < 0.5 {
                    win += 1;
                }
            }
            rows.push(row);
        }
        (on, win, rows)
    }

    #[test]
    fn count_and_fire_agrees_with_a_plain_loop() {
        // Widths with and without a tail of < 16 lanes; thresholds from 0 (ReLU) to most firing;
        // values on a grid so that some sit exactly on a threshold (not firing: strict >).
        let mut complete = 0;
        for (rows, d) in [(70, 50), (40, 16), (3, 1000), (1, 7)] {
            let z: Vec<f32> = (0..rows * d)
                .map(|i| ((i * 37 + 11) % 29) as f32 / 4.0 - 3.0)
                .collect();
            let b: Vec<f32> = (0..d).map(|j| ((j * 7) % 5) as f32 / 8.0 - 0.25).collect();
            for level in [-4.0f32, 0.0, 1.5, 3.0] {
                let t: Vec<f32> = (0..d).map(|j| level + (j % 3) as f32 * 0.25).collect();
                let (on, win, want) = plain(&z, &b, &t, 1.5);
                let mut act = RowSets::default();
                let c = count_and_fire(&z, &b, &t, 1.5, true, &mut act);
                let n = (rows * d) as f64;
                assert_eq!(c.density, on as f64 / n, "{rows}x{d} at {level}");
                assert_eq!(c.window, win as f64 / n, "{rows}x{d} at {level}");
                let got_relu = count_and_fire(&z, &b, &t, 1.5, false, &mut RowSets::default());
                assert_eq!((got_relu.density, got_relu.window), (c.density, 0.0));
                if !c.complete {
                    assert!(on > (COLLECT_LIMIT * (ROW_BLOCK * d) as f64) as usize);
                    continue;
                }
                complete += 1;
                for (r, row) in want.iter().enumerate() {
                    let (idx, val) = act.row(r);
                    let got: Vec<(u32, f32)> =
                        idx.iter().copied().zip(val.iter().copied()).collect();
                    assert_eq!(&got, row, "{rows}x{d} at {level}, row {r}");
                }
            }
        }
        assert!(
            complete >= 8,
            "the collecting path must be exercised ({complete} cases)"
        );
    }
}
