//! The fast forward path: the same models as `models/`, run on host buffers of packed sequences (no
//! padding) with fused q|k|v and gate|up weights, direct `gemm` calls and fused elementwise passes. The
//! candle forward in `models/` stays the reference; `tests/fast_path.rs` checks that both agree.

pub mod attention;
pub mod bert;
pub mod gemm;
pub mod gpt2;
pub mod llama;
pub mod math;
pub mod norm;
mod pool;

use candle_core::Tensor;
use candle_nn::Linear;

use crate::error::{LmError, Result};
use crate::hooks::Hook;
pub(crate) use pool::{Buf, Pool};

/// Sequences laid end to end: the tokens of sequence i are `ids[starts[i]..starts[i + 1]]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Packed {
    /// Token ids of all sequences.
    pub ids: Vec<u32>,
    /// n_seqs + 1 ascending offsets into `ids` (first 0, last ids.len()).
    pub starts: Vec<usize>,
}

impl Packed {
    /// Packs sequences.
    pub fn new<S: AsRef<[u32]>>(seqs: &[S]) -> Packed {
        let mut p = Packed {
            ids: Vec::new(),
            starts: vec![0],
        };
        for s in seqs {
            p.ids.extend_from_slice(s.as_ref());
            p.starts.push(p.ids.len());
        }
        p
    }

    /// Tokens in all.
    pub fn tokens(&self) -> usize {
        self.ids.len()
    }

    /// Longest sequence.
    pub fn max_len(&self) -> usize {
        self.starts
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or(0)
    }

    /// Each token's position within its sequence.
    pub fn positions(&self) -> Vec<u32> {
        self.starts
            .windows(2)
            .flat_map(|w| 0..(w[1] - w[0]) as u32)
            .collect()
    }
}

/// Receives the activations of a packed forward pass, rows [tokens, width] in packed order, and may
/// rewrite them in place (a splice).
pub trait RowSink {
    /// Whether the sink wants this hook (the model skips the copy otherwise).
    fn wants(&self, hook: Hook) -> bool;
    /// The last block any wanted hook needs (the pass stops after it, unless logits are asked for).
    fn last_layer(&self) -> Option<usize>;
    /// Takes the rows of one hook.
    fn put_rows(&mut self, hook: Hook, rows: &[f32], width: usize) -> Result<()>;
    /// Takes the rows of one hook and may overwrite them: the forward pass continues with what the sink
    /// leaves there (the splice). The default only reads.
    fn edit_rows(&mut self, hook: Hook, rows: &mut [f32], width: usize) -> Result<()> {
        self.put_rows(hook, rows, width)
    }
}

/// What a packed forward calls at a hook point: `edit_rows` when the sink wants the hook.
pub(crate) fn offer(
    sink: &mut dyn RowSink,
    hook: Hook,
    rows: &mut [f32],
    width: usize,
) -> Result<()> {
    if sink.wants(hook) {
        sink.edit_rows(hook, rows, width)?;
    }
    Ok(())
}

/// A tensor's elements as f32, row-major.
pub(crate) fn host(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1()?)
}

/// A linear layer (candle weight [out, in]) as one weight [in, out] and bias, with the out columns of
/// several layers side by side (fused q|k|v, gate|up).
pub(crate) struct FusedLinear {
    pub w: Vec<f32>,
    pub b: Option<Vec<f32>>,
    pub d_in: usize,
    pub d_out: usize,
}

impl FusedLinear {
    pub fn new(parts: &[&Linear]) -> Result<FusedLinear> {
        let ws: Vec<&Tensor> = parts.iter().map(|l| l.weight()).collect();
        let w = Tensor::cat(&ws, 0)?;
        let (d_out, d_in) = w.dims2()?;
        let b = match parts.iter().map(|l| l.bias()).collect::<Option<Vec<_>>>() {
            Some(bs) => Some(host(&Tensor::cat(&bs, 0)?)?),
            None if parts.iter().all(|l| l.bias().is_none()) => None,
            None => {
                return Err(LmError::Invalid(
                    "fused layers must all have a bias or none".into(),
                ))
            }
        };
        Ok(FusedLinear {
            w: host(&w.t()?.contiguous()?)?,
            b,
            d_in,
            d_out,
        })
    }

    /// x [n, d_in] -> [n, d_out], in a buffer of `pool`.
    pub fn forward<'p>(&self, x: &[f32], pool: &'p Pool) -> Buf<'p> {
        let mut y = pool.take(x.len() / self.d_in * self.d_out);
        gemm::linear_into(&mut y, x, &self.w, self.b.as_deref(), self.d_in, self.d_out);
        y
    }

    /// x W without the bias, which the caller adds in its next pass over the output (see [`Self::bias`]).
    pub fn forward_unbiased<'p>(&self, x: &[f32], pool: &'p Pool) -> Buf<'p> {
        let mut y = pool.take(x.len() / self.d_in * self.d_out);
        gemm::linear_into(&mut y, x, &self.w, None, self.d_in, self.d_out);
        y
    }

    /// The bias [d_out], if the layer has one.
    pub fn bias(&self) -> Option<&[f32]> {
        self.b.as_deref()
    }
}

/// Rows `ids` of an embedding table [vocab, d], plus `add` rows by position when given. -> [ids, d]
pub(crate) fn embed<'p>(
    table: &[f32],
    d: usize,
    ids: &[u32],
    add: Option<(&[f32], &[u32])>,
    pool: &'p Pool,
) -> Result<Buf<'p>> {
    let vocab = table.len() / d;
    let mut x = pool.take(ids.len() * d);
    for (row, &id) in x.chunks_exact_mut(d).zip(ids) {
        let id = id as usize;
        if id >= vocab {
            return Err(LmError::Invalid(format!(
                "token id {id} is outside the vocabulary of {vocab}"
            )));
        }
        row.copy_from_slice(&table[id * d..(id + 1) * d]);
    }
    if let Some((rows, pos)) = add {
        for (xr, &p) in x.chunks_mut(d).zip(pos) {
            let p = p as usize;
            for (v, a) in xr.iter_mut().zip(&rows[p * d..(p + 1) * d]) {
                *v += a;
            }
        }
    }
    Ok(x)
}

/// The unembedding [vocab, d] of a causal model: the token embedding itself (tied) or its own matrix.
pub(crate) struct Unembed {
    own: Option<Vec<f32>>,
    d: usize,
}

impl Unembed {
    /// Logits through the token embedding table.
    pub fn tied(d: usize) -> Unembed {
        Unembed { own: None, d }
    }

    /// Logits through a separate `lm_head` weight [vocab, d].
    pub fn own(w: &Tensor) -> Result<Unembed> {
        let (_, d) = w.dims2()?;
        Ok(Unembed {
            own: Some(host(w)?),
            d,
        })
    }

    /// x [n, d] (after the final norm) -> logits [n, vocab] = x W^T, W the own matrix or `embedding`.
    pub fn logits(&self, x: &[f32], embedding: &[f32]) -> Vec<f32> {
        let w = self.own.as_deref().unwrap_or(embedding);
        let (d, vocab) = (self.d, w.len() / self.d);
        let n = x.len() / d;
        let mut out = vec![0.0f32; n * vocab];
        gemm::matmul(
            &mut out,
            vocab,
            gemm::View::dense(x, n, d),
            gemm::View::dense(w, vocab, d).t(),
            1.0,
            false,
            gemm::Par::Pool,
        );
        out
    }
}
