//! BERT on the fast path: fused q|k|v, packed attention without padding, LayerNorm fused with the
//! residual add, exact GELU in one vectorised pass.

use candle_nn::LayerNorm;

use super::attention::{attention, Heads};
use super::norm::layer_norm_inplace;
use super::{embed, host, math, offer, FusedLinear, Packed, Pool, RowSink};
use crate::error::{LmError, Result};
use crate::hooks::{Hook, HookPoint};
use crate::models::bert::{Bert, BertConfig};

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

    /// x = LN(x + add)
    fn apply(&self, x: &mut [f32], add: Option<&[f32]>) {
        layer_norm_inplace(x, add, &self.w, self.b.as_deref(), self.eps);
    }
}

struct Block {
    qkv: FusedLinear,
    attn_out: FusedLinear,
    ln_attn: Norm,
    inter: FusedLinear,
    out: FusedLinear,
    ln_out: Norm,
}

/// Host weights of a BERT encoder.
pub struct FastBert {
    cfg: BertConfig,
    word: Vec<f32>,
    /// Position embedding + token type 0, per position.
    pos_type: Vec<f32>,
    ln_embed: Norm,
    blocks: Vec<Block>,
    pool: Pool,
}

impl FastBert {
    /// Copies (and fuses) the weights of a loaded model.
    pub fn new(m: &Bert) -> Result<FastBert> {
        let pos_type = m
            .position
            .embeddings()
            .broadcast_add(&m.token_type.embeddings().get(0)?)?;
        let blocks = m
            .blocks
            .iter()
            .map(|b| {
                Ok(Block {
                    qkv: FusedLinear::new(&[&b.q, &b.k, &b.v])?,
                    attn_out: FusedLinear::new(&[&b.attn_out])?,
                    ln_attn: Norm::new(&b.ln_attn)?,
                    inter: FusedLinear::new(&[&b.inter])?,
                    out: FusedLinear::new(&[&b.out])?,
                    ln_out: Norm::new(&b.ln_out)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(FastBert {
            cfg: m.config().clone(),
            word: host(m.word.embeddings())?,
            pos_type: host(&pos_type)?,
            ln_embed: Norm::new(&m.ln_embed)?,
            blocks,
            pool: Pool::default(),
        })
    }

    /// Runs packed sequences (token type 0, each attending to itself only), offering hooks to `sink`
    /// and stopping after the last block it needs.
    pub fn forward(&self, p: &Packed, sink: &mut dyn RowSink) -> Result<()> {
        let c = &self.cfg;
        let d = c.d_model;
        if p.max_len() > c.n_ctx {
            return Err(LmError::Invalid(format!(
                "context of {} tokens is longer than BERT's {} positions",
                p.max_len(),
                c.n_ctx
            )));
        }
        let pos = p.positions();
        let pool = &self.pool;
        let mut x = embed(&self.word, d, &p.ids, Some((&self.pos_type, &pos)), pool)?;
        self.ln_embed.apply(&mut x, None);
        let heads = Heads {
            n_heads: c.n_heads,
            n_kv_heads: c.n_heads,
            head_dim: d / c.n_heads,
        };
        let scale = 1.0 / (heads.head_dim as f32).sqrt();
        let stop = sink.last_layer().unwrap_or(c.n_layers - 1);
        for (i, b) in self.blocks.iter().enumerate().take(stop + 1) {
            let hook = |pt| Hook::new(i, pt);
            offer(sink, hook(HookPoint::ResidPre), &mut x, d)?;
            let mut y = pool.take(x.len());
            attention(
                &mut y,
                &b.qkv.forward(&x, pool),
                &p.starts,
                heads,
                false,
                scale,
            );
            let mut mid = b.attn_out.forward(&y, pool);
            drop(y);
            offer(sink, hook(HookPoint::AttnOut), &mut mid, d)?;
            b.ln_attn.apply(&mut mid, Some(&x));
            offer(sink, hook(HookPoint::MlpIn), &mut mid, d)?;
            let mut post = b.inter.forward_unbiased(&mid, pool);
            math::gelu_inplace(&mut post, c.d_mlp, b.inter.bias(), c.gelu_tanh);
            offer(sink, hook(HookPoint::MlpPost), &mut post, c.d_mlp)?;
            let mut mlp = b.out.forward(&post, pool);
            drop(post);
            offer(sink, hook(HookPoint::MlpOut), &mut mlp, d)?;
            b.ln_out.apply(&mut mlp, Some(&mid));
            x = mlp;
            offer(sink, hook(HookPoint::ResidPost), &mut x, d)?;
        }
        Ok(())
    }
}
