//! GPT-2 on the fast path: the fused c_attn as one GEMM, packed causal attention, pre-LayerNorms, tanh
//! GELU in one vectorised pass, residual adds in place.

use candle_nn::LayerNorm;

use super::attention::{attention, Heads};
use super::norm::layer_norm;
use super::{embed, host, math, offer, Buf, FusedLinear, Packed, Pool, RowSink, Unembed};
use crate::error::{LmError, Result};
use crate::hooks::{Hook, HookPoint};
use crate::models::gpt2::{Gpt2, Gpt2Config};

struct Norm {
    w: Vec<f32>,
    b: Option<Vec<f32>>,
    eps: f32,
}

impl Norm {
    fn new(ln: &LayerNorm) -> Result<Norm> {
        Ok(Norm {
            w: host(ln.weight())?,
            b: ln.bias().map(host).transpose()?,
            eps: ln.eps() as f32,
        })
    }

    fn apply<'p>(&self, x: &[f32], pool: &'p Pool) -> Buf<'p> {
        let mut y = pool.take(x.len());
        layer_norm(&mut y, x, &self.w, self.b.as_deref(), self.eps);
        y
    }
}

struct Block {
    ln1: Norm,
    c_attn: FusedLinear,
    c_proj: FusedLinear,
    ln2: Norm,
    c_fc: FusedLinear,
    mlp_proj: FusedLinear,
}

/// Host weights of a GPT-2 model.
pub struct FastGpt2 {
    cfg: Gpt2Config,
    wte: Vec<f32>,
    wpe: Vec<f32>,
    blocks: Vec<Block>,
    ln_f: Norm,
    head: Unembed,
    pool: Pool,
}

impl FastGpt2 {
    /// Copies the weights of a loaded model.
    pub fn new(m: &Gpt2) -> Result<FastGpt2> {
        let blocks = m
            .blocks
            .iter()
            .map(|b| {
                Ok(Block {
                    ln1: Norm::new(&b.ln1)?,
                    c_attn: FusedLinear::new(&[&b.c_attn])?,
                    c_proj: FusedLinear::new(&[&b.c_proj])?,
                    ln2: Norm::new(&b.ln2)?,
                    c_fc: FusedLinear::new(&[&b.c_fc])?,
                    mlp_proj: FusedLinear::new(&[&b.mlp_proj])?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(FastGpt2 {
            cfg: m.config().clone(),
            wte: host(m.wte.embeddings())?,
            wpe: host(m.wpe.embeddings())?,
            blocks,
            ln_f: Norm::new(&m.ln_f)?,
            head: Unembed::tied(m.config().d_model),
            pool: Pool::default(),
        })
    }

    /// Runs packed sequences, offering hooks to `sink` and stopping after the last block it needs.
    pub fn forward(&self, p: &Packed, sink: &mut dyn RowSink) -> Result<()> {
        let stop = sink.last_layer().unwrap_or(self.cfg.n_layers - 1);
        self.blocks(p, sink, stop).map(|_| ())
    }

    /// Next-token logits [tokens, vocab] after all blocks, the sink offered (and allowed to rewrite)
    /// every hook it wants on the way.
    pub fn logits(&self, p: &Packed, sink: &mut dyn RowSink) -> Result<Vec<f32>> {
        let x = self.blocks(p, sink, self.cfg.n_layers - 1)?;
        Ok(self
            .head
            .logits(&self.ln_f.apply(&x, &self.pool), &self.wte))
    }

    /// Blocks 0..=stop over packed sequences -> the residual stream after block `stop`.
    fn blocks(&self, p: &Packed, sink: &mut dyn RowSink, stop: usize) -> Result<Buf<'_>> {
        let c = &self.cfg;
        let d = c.d_model;
        if p.max_len() > c.n_ctx {
            return Err(LmError::Invalid(format!(
                "context of {} tokens is longer than GPT-2's {} positions",
                p.max_len(),
                c.n_ctx
            )));
        }
        let pos = p.positions();
        let pool = &self.pool;
        let mut x = embed(&self.wte, d, &p.ids, Some((&self.wpe, &pos)), pool)?;
        let heads = Heads {
            n_heads: c.n_heads,
            n_kv_heads: c.n_heads,
            head_dim: d / c.n_heads,
        };
        let scale = 1.0 / (heads.head_dim as f32).sqrt();
        for (i, b) in self.blocks.iter().enumerate().take(stop + 1) {
            let hook = |pt| Hook::new(i, pt);
            offer(sink, hook(HookPoint::ResidPre), &mut x, d)?;
            let qkv = b.c_attn.forward(&b.ln1.apply(&x, pool), pool);
            let mut y = pool.take(x.len());
            attention(&mut y, &qkv, &p.starts, heads, true, scale);
            drop(qkv);
            let mut attn = b.c_proj.forward(&y, pool);
            drop(y);
            offer(sink, hook(HookPoint::AttnOut), &mut attn, d)?;
            math::add_inplace(&mut x, &attn);
            let mut h = b.ln2.apply(&x, pool);
            offer(sink, hook(HookPoint::MlpIn), &mut h, d)?;
            let mut post = b.c_fc.forward_unbiased(&h, pool);
            drop(h);
            math::gelu_inplace(&mut post, c.d_mlp, b.c_fc.bias(), true);
            offer(sink, hook(HookPoint::MlpPost), &mut post, c.d_mlp)?;
            let mut mlp = b.mlp_proj.forward(&post, pool);
            drop(post);
            offer(sink, hook(HookPoint::MlpOut), &mut mlp, d)?;
            math::add_inplace(&mut x, &mlp);
            offer(sink, hook(HookPoint::ResidPost), &mut x, d)?;
        }
        Ok(x)
    }
}
