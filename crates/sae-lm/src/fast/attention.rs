//! Attention over packed sequences: one task per (sequence, head) on the rayon pool, each a strided
//! Q K^T GEMM straight from the fused q|k|v rows (the scale folded into it), a fused softmax over the
//! contiguous score tile (causal rows stop at the diagonal), and P V written into the head's columns of
//! the output. No transpose copies, no padding, no mask tensor.

use rayon::prelude::*;

use super::gemm::{matmul_tile, View};
use sae_simd::simd_dispatch;

use super::math::{exp_sum_inplace, lane_max};

/// Head layout of a fused q|k|v row: `n_heads` query heads, then `n_kv_heads` key heads, then as many
/// value heads, each `head_dim` wide. Query head h reads key/value head h / (n_heads / n_kv_heads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heads {
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

impl Heads {
    /// Width of a fused q|k|v row.
    pub fn qkv_width(&self) -> usize {
        (self.n_heads + 2 * self.n_kv_heads) * self.head_dim
    }
}

struct OutPtr(*mut f32);
// SAFETY: each task writes a disjoint (rows of its sequence) x (columns of its head) tile.
unsafe impl Sync for OutPtr {}
unsafe impl Send for OutPtr {}

#[inline(always)]
fn softmax_row(keep: &mut [f32]) {
    let max = lane_max(keep);
    let inv = 1.0 / exp_sum_inplace(keep, max);
    for v in keep.iter_mut() {
        *v *= inv;
    }
}

simd_dispatch! {
    /// softmax over each row of `s` [rows, width], zeros after the diagonal when `causal_from` is the
    /// index of the first row (row i then keeps its first causal_from + i + 1 entries).
    fn softmax_rows(s: &mut [f32], width: usize, causal_from: Option<usize>) {
        for (i, row) in s.chunks_mut(width).enumerate() {
            let valid = causal_from.map_or(width, |r0| (r0 + i + 1).min(width));
            let (keep, masked) = row.split_at_mut(valid);
            softmax_row(keep);
            masked.fill(0.0);
        }
    }
}

/// Query rows per score tile of a causal sequence: a tile sees only the keys up to its last row.
const CAUSAL_BLOCK: usize = 64;

/// softmax(q k^T * scale (+ causal mask)) v for every sequence and head.
///
/// qkv: [n, heads.qkv_width()] fused rows; `starts`: sequence boundaries (n_seqs + 1 offsets into the rows,
/// ascending, last = n). out: [n, n_heads * head_dim], every element written (old contents do not matter).
pub fn attention(
    out: &mut [f32],
    qkv: &[f32],
    starts: &[usize],
    heads: Heads,
    causal: bool,
    scale: f32,
) {
    let Heads {
        n_heads,
        n_kv_heads,
        head_dim: hd,
    } = heads;
    let w = heads.qkv_width();
    let n = qkv.len() / w;
    assert!(starts.last() == Some(&n) && n_heads % n_kv_heads == 0);
    let group = n_heads / n_kv_heads;
    let dw = n_heads * hd;
    assert_eq!(out.len(), n * dw, "attention: output size");
    let ptr = OutPtr(out.as_mut_ptr());
    let tasks: Vec<(usize, usize, usize)> = starts
        .windows(2)
        .filter(|s| s[1] > s[0])
        .flat_map(|s| (0..n_heads).map(move |h| (s[0], s[1] - s[0], h)))
        .collect();
    tasks
        .into_par_iter()
        .for_each_init(Vec::new, |scores: &mut Vec<f32>, (start, len, h)| {
            let kvh = h / group;
            let block = if causal { CAUSAL_BLOCK } else { len };
            for r0 in (0..len).step_by(block) {
                let rows = block.min(len - r0);
                // Causal: rows r0..r0+rows see keys 0..r0+rows; the rest of the tile would be masked.
                let keys = if causal { r0 + rows } else { len };
                let q = View::block(qkv, w, start + r0, h * hd, rows, hd);
                let k = View::block(qkv, w, start, (n_heads + kvh) * hd, keys, hd);
                let v = View::block(qkv, w, start, (n_heads + n_kv_heads + kvh) * hd, keys, hd);
                scores.resize(rows * keys, 0.0);
                // SAFETY: `scores` is this task's own buffer of rows x keys.
                unsafe { matmul_tile(scores.as_mut_ptr(), keys, q, k.t(), scale) };
                softmax_rows(scores, keys, causal.then_some(r0));
                let p = View::dense(scores, rows, keys);
                let ptr = &ptr;
                // SAFETY: rows start+r0.. of the sequence, columns h*hd..(h+1)*hd of `out` (row stride dw)
                // are inside it and written by this task alone; `out` outlives the parallel loop.
                unsafe { matmul_tile(ptr.0.add((start + r0) * dw + h * hd), dw, p, v, 1.0) };
            }
        });
}

/// Rotates the query and key heads of fused q|k|v rows in place. `pos[r]` is row r's position;
/// cos/sin: [positions, head_dim / 2]. `interleaved`: pairs (2i, 2i+1) (GGUF/Meta order), else the
/// halves (i, i + head_dim/2) (Hugging Face order).
pub fn rope_inplace(
    qkv: &mut [f32],
    pos: &[u32],
    heads: Heads,
    cos: &[f32],
    sin: &[f32],
    interleaved: bool,
) {
    let w = heads.qkv_width();
    let hd = heads.head_dim;
    let half = hd / 2;
    let rotated = heads.n_heads + heads.n_kv_heads;
    qkv.par_chunks_mut(w * 16)
        .zip(pos.par_chunks(16))
        .for_each(|(rows, ps)| {
            for (row, &p) in rows.chunks_mut(w).zip(ps) {
                let c = &cos[p as usize * half..(p as usize + 1) * half];
                let s = &sin[p as usize * half..(p as usize + 1) * half];
                for head in row[..rotated * hd].chunks_mut(hd) {
                    if interleaved {
                        for i in 0..half {
                            let (a, b) = (head[2 * i], head[2 * i + 1]);
                            head[2 * i] = a * c[i] - b * s[i];
                            head[2 * i + 1] = a * s[i] + b * c[i];
                        }
                    } else {
                        let (x1, x2) = head.split_at_mut(half);
                        for i in 0..half {
                            let (a, b) = (x1[i], x2[i]);
                            x1[i] = a * c[i] - b * s[i];
                            x2[i] = b * c[i] + a * s[i];
                        }
                    }
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain f64 attention of one sequence and head: the reference.
    fn reference(
        qkv: &[f32],
        w: usize,
        rows: std::ops::Range<usize>,
        cols: [usize; 3],
        hd: usize,
        causal: bool,
        scale: f64,
    ) -> Vec<f64> {
        let len = rows.len();
        let at = |r: usize, c: usize| qkv[(rows.start + r) * w + c] as f64;
        let mut out = vec![0.0; len * hd];
        for i in 0..len {
            let keys = if causal { i + 1 } else { len };
            let s: Vec<f64> = (0..keys)
                .map(|j| {
                    (0..hd)
                        .map(|d| at(i, cols[0] + d) * at(j, cols[1] + d))
                        .sum::<f64>()
                        * scale
                })
                .collect();
            let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|v| (v - max).exp()).collect();
            let z: f64 = e.iter().sum();
            for d in 0..hd {
                out[i * hd + d] = (0..keys).map(|j| e[j] / z * at(j, cols[2] + d)).sum();
            }
        }
        out
    }

    #[test]
    fn packed_grouped_attention_matches_plain_loops() {
        // Sequences of 1, 70 and 130 tokens (causal tiles of 64 rows: partial, exact and ragged), GQA 4 / 2.
        let heads = Heads {
            n_heads: 4,
            n_kv_heads: 2,
            head_dim: 8,
        };
        let starts = [0, 1, 71, 201];
        let w = heads.qkv_width();
        let qkv: Vec<f32> = (0..201 * w)
            .map(|i| (((i * 37) % 101) as f32 - 50.0) / 40.0)
            .collect();
        for causal in [false, true] {
            let mut got = vec![f32::NAN; 201 * 32];
            attention(&mut got, &qkv, &starts, heads, causal, 0.35);
            for s in starts.windows(2) {
                for h in 0..4 {
                    let kvh = h / 2;
                    let cols = [h * 8, (4 + kvh) * 8, (6 + kvh) * 8];
                    let want = reference(&qkv, w, s[0]..s[1], cols, 8, causal, 0.35);
                    for (i, r) in (s[0]..s[1]).enumerate() {
                        for d in 0..8 {
                            let (a, b) = (got[r * 32 + h * 8 + d] as f64, want[i * 8 + d]);
                            assert!(
                                (a - b).abs() < 1e-5,
                                "causal {causal} row {r} head {h}: {a} vs {b}"
                            );
                        }
                    }
                }
            }
        }
    }
}
