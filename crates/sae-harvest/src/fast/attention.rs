//! Attention over packed sequences: one task per (sequence, head) on the rayon pool, each a strided
//! Q K^T GEMM straight from the fused q|k|v rows (the scale folded into it), a fused softmax over the
//! contiguous score tile (causal rows stop at the diagonal), and P V written into the head's columns of
//! the output. No transpose copies, no padding, no mask tensor.

use rayon::prelude::*;

use super::gemm::{matmul_tile, View};
use super::math::{exp, max8, simd, sum8};

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
    let max = max8(keep);
    for v in keep.iter_mut() {
        *v = exp(*v - max);
    }
    let inv = 1.0 / sum8(keep);
    for v in keep.iter_mut() {
        *v *= inv;
    }
}

/// softmax over the first `valid` entries of each row of `s` [len, len] (causal: row i keeps i + 1),
/// zeros after.
fn softmax_rows(s: &mut [f32], len: usize, causal: bool) {
    simd(|| {
        for (i, row) in s.chunks_mut(len).enumerate() {
            let valid = if causal { i + 1 } else { len };
            let (keep, masked) = row.split_at_mut(valid);
            softmax_row(keep);
            masked.fill(0.0);
        }
    })
}

/// softmax(q k^T * scale (+ causal mask)) v for every sequence and head.
///
/// qkv: [n, heads.qkv_width()] fused rows; `starts`: sequence boundaries (n_seqs + 1 offsets into the rows,
/// ascending, last = n). -> [n, n_heads * head_dim]
pub fn attention(
    qkv: &[f32],
    starts: &[usize],
    heads: Heads,
    causal: bool,
    scale: f32,
) -> Vec<f32> {
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
    let mut out = vec![0.0f32; n * dw];
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
            let q = View::block(qkv, w, start, h * hd, len, hd);
            let k = View::block(qkv, w, start, (n_heads + kvh) * hd, len, hd);
            let v = View::block(qkv, w, start, (n_heads + n_kv_heads + kvh) * hd, len, hd);
            scores.resize(len * len, 0.0);
            // SAFETY: `scores` is this task's own buffer of len x len.
            unsafe { matmul_tile(scores.as_mut_ptr(), len, q, k.t(), scale) };
            softmax_rows(scores, len, causal);
            let p = View::dense(scores, len, len);
            let ptr = &ptr;
            // SAFETY: rows start..start+len, columns h*hd..(h+1)*hd of `out` (row stride dw) are inside it
            // and written by this task alone; `out` outlives the parallel loop.
            unsafe { matmul_tile(ptr.0.add(start * dw + h * hd), dw, p, v, 1.0) };
        });
    out
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
