//! Llama-family decoders on the fast path: fused q|k|v and gate|up GEMMs, rotary positions in place on the
//! fused rows, packed causal grouped-query attention, RMSNorm and SiLU-gating as single passes.

use candle_nn::RmsNorm;

use super::attention::{attention, rope_inplace, Heads};
use super::norm::rms_norm;
use super::{embed, host, math, offer, Buf, FusedLinear, Packed, Pool, RowSink, Unembed};
use crate::error::Result;
use crate::hooks::{Hook, HookPoint};
use crate::models::llama::{Llama, LlamaConfig};

struct Norm {
    w: Vec<f32>,
    eps: f32,
}

impl Norm {
    fn new(n: &RmsNorm) -> Result<Norm> {
        Ok(Norm {
            w: host(n.weight())?,
            eps: n.eps() as f32,
        })
    }
}

struct Block {
    ln1: Norm,
    qkv: FusedLinear,
    o: FusedLinear,
    ln2: Norm,
    gate_up: FusedLinear,
    down: FusedLinear,
}

/// Host weights of a Llama-family decoder.
pub struct FastLlama {
    cfg: LlamaConfig,
    embed: Vec<f32>,
    inv_freq: Vec<f32>,
    blocks: Vec<Block>,
    norm: Norm,
    head: Unembed,
    pool: Pool,
}

impl FastLlama {
    /// Copies (and fuses) the weights of a loaded model.
    pub fn new(m: &Llama) -> Result<FastLlama> {
        let blocks = m
            .blocks
            .iter()
            .map(|b| {
                let a = &b.attn;
                Ok(Block {
                    ln1: Norm::new(&b.ln1)?,
                    qkv: FusedLinear::new(&[&a.q, &a.k, &a.v])?,
                    o: FusedLinear::new(&[&a.o])?,
                    ln2: Norm::new(&b.ln2)?,
                    gate_up: FusedLinear::new(&[&b.gate, &b.up])?,
                    down: FusedLinear::new(&[&b.down])?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(FastLlama {
            cfg: m.config().clone(),
            embed: host(m.embed.embeddings())?,
            inv_freq: m.config().inv_freq(),
            blocks,
            norm: Norm::new(&m.norm)?,
            head: if m.unembed.id() == m.embed.embeddings().id() {
                Unembed::tied(m.config().d_model)
            } else {
                Unembed::own(&m.unembed)?
            },
            pool: Pool::default(),
        })
    }

    /// cos, sin [len, head_dim / 2] of positions 0..len, computed as the reference does (f32).
    fn rotary(&self, len: usize) -> (Vec<f32>, Vec<f32>) {
        let mut cos = Vec::with_capacity(len * self.inv_freq.len());
        let mut sin = Vec::with_capacity(len * self.inv_freq.len());
        for p in 0..len {
            for &f in &self.inv_freq {
                let a = p as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        (cos, sin)
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
        let mut normed = self.pool.take(x.len());
        rms_norm(&mut normed, &x, &self.norm.w, self.norm.eps);
        Ok(self.head.logits(&normed, &self.embed))
    }

    /// Blocks 0..=stop over packed sequences -> the residual stream after block `stop`.
    fn blocks(&self, p: &Packed, sink: &mut dyn RowSink, stop: usize) -> Result<Buf<'_>> {
        let c = &self.cfg;
        let d = c.d_model;
        let pos = p.positions();
        let (cos, sin) = self.rotary(p.max_len());
        let pool = &self.pool;
        let mut x = embed(&self.embed, d, &p.ids, None, pool)?;
        let heads = Heads {
            n_heads: c.n_heads,
            n_kv_heads: c.n_kv_heads,
            head_dim: c.head_dim,
        };
        let scale = 1.0 / (c.head_dim as f32).sqrt();
        for (i, b) in self.blocks.iter().enumerate().take(stop + 1) {
            let hook = |pt| Hook::new(i, pt);
            offer(sink, hook(HookPoint::ResidPre), &mut x, d)?;
            let mut normed = pool.take(x.len());
            rms_norm(&mut normed, &x, &b.ln1.w, b.ln1.eps);
            let mut qkv = b.qkv.forward(&normed, pool);
            rope_inplace(&mut qkv, &pos, heads, &cos, &sin, c.rope_interleaved);
            let mut y = pool.take(p.tokens() * heads.n_heads * heads.head_dim);
            attention(&mut y, &qkv, &p.starts, heads, true, scale);
            drop(qkv);
            let mut attn = b.o.forward(&y, pool);
            drop(y);
            offer(sink, hook(HookPoint::AttnOut), &mut attn, d)?;
            math::add_inplace(&mut x, &attn);
            rms_norm(&mut normed, &x, &b.ln2.w, b.ln2.eps);
            offer(sink, hook(HookPoint::MlpIn), &mut normed, d)?;
            let gu = b.gate_up.forward(&normed, pool);
            drop(normed);
            let mut post = pool.take(p.tokens() * c.d_mlp);
            math::silu_gate(&mut post, &gu, c.d_mlp);
            drop(gu);
            offer(sink, hook(HookPoint::MlpPost), &mut post, c.d_mlp)?;
            let mut mlp = b.down.forward(&post, pool);
            drop(post);
            offer(sink, hook(HookPoint::MlpOut), &mut mlp, d)?;
            math::add_inplace(&mut x, &mlp);
            offer(sink, hook(HookPoint::ResidPost), &mut x, d)?;
        }
        Ok(x)
    }
}
