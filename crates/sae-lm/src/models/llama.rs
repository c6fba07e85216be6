//! Llama-family decoder (Llama 2/3, SmolLM2, TinyLlama, Mistral, Qwen2) with hook points, in candle's style.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Embedding, Linear, RmsNorm, VarBuilder};

use crate::attention::causal_mask;
use crate::error::Result;
use crate::hooks::{Hook, HookPoint, HookSink};
use crate::linearize::Linearize;

pub use super::llama_config::{LlamaConfig, RawLlamaConfig, RopeScaling};

fn lin(i: usize, o: usize, bias: bool, vb: VarBuilder) -> candle_core::Result<Linear> {
    if bias {
        candle_nn::linear(i, o, vb)
    } else {
        candle_nn::linear_no_bias(i, o, vb)
    }
}

/// Self-attention with rotary positions.
pub(crate) struct Attention {
    pub(crate) q: Linear,
    pub(crate) k: Linear,
    pub(crate) v: Linear,
    pub(crate) o: Linear,
    pub(crate) n_heads: usize,
    pub(crate) n_kv_heads: usize,
    pub(crate) head_dim: usize,
    pub(crate) interleaved: bool,
}

impl Attention {
    fn load(vb: VarBuilder, c: &LlamaConfig) -> candle_core::Result<Self> {
        let (d, hd) = (c.d_model, c.head_dim);
        Ok(Attention {
            q: lin(d, c.n_heads * hd, c.qkv_bias, vb.pp("q_proj"))?,
            k: lin(d, c.n_kv_heads * hd, c.qkv_bias, vb.pp("k_proj"))?,
            v: lin(d, c.n_kv_heads * hd, c.qkv_bias, vb.pp("v_proj"))?,
            o: lin(c.n_heads * hd, d, c.o_bias, vb.pp("o_proj"))?,
            n_heads: c.n_heads,
            n_kv_heads: c.n_kv_heads,
            head_dim: hd,
            interleaved: c.rope_interleaved,
        })
    }

    /// x: [b, t, d], cos/sin: [t, hd/2], mask: [t, t] -> [b, t, d]
    fn forward(
        &self,
        x: &Tensor,
        rot: &Rotary,
        mask: &Tensor,
        lin: &mut Linearize,
        layer: usize,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let split = |y: Tensor, h: usize| -> Result<Tensor> {
            Ok(y.reshape((b, t, h, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = split(self.q.forward(x)?, self.n_heads)?;
        let k = split(self.k.forward(x)?, self.n_kv_heads)?;
        let v = split(self.v.forward(x)?, self.n_kv_heads)?;
        let q = lin.rope(&q, &rot.cos, &rot.sin, self.interleaved)?;
        let k = lin.rope(&k, &rot.cos, &rot.sin, self.interleaved)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let y = lin.attention(layer, &q, &k, &v, mask, scale)?;
        Ok(self.o.forward(&y)?)
    }
}

/// The rotary tables of one context length: [t, head_dim / 2] each.
pub(crate) struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

/// One decoder block: pre-norm attention and a gated SiLU MLP.
pub(crate) struct Block {
    pub(crate) ln1: RmsNorm,
    pub(crate) attn: Attention,
    pub(crate) ln2: RmsNorm,
    pub(crate) gate: Linear,
    pub(crate) up: Linear,
    pub(crate) down: Linear,
}

impl Block {
    fn load(vb: VarBuilder, c: &LlamaConfig) -> candle_core::Result<Self> {
        let mlp = vb.pp("mlp");
        Ok(Block {
            ln1: candle_nn::rms_norm(c.d_model, c.eps, vb.pp("input_layernorm"))?,
            attn: Attention::load(vb.pp("self_attn"), c)?,
            ln2: candle_nn::rms_norm(c.d_model, c.eps, vb.pp("post_attention_layernorm"))?,
            gate: lin(c.d_model, c.d_mlp, c.mlp_bias, mlp.pp("gate_proj"))?,
            up: lin(c.d_model, c.d_mlp, c.mlp_bias, mlp.pp("up_proj"))?,
            down: lin(c.d_mlp, c.d_model, c.mlp_bias, mlp.pp("down_proj"))?,
        })
    }
}

/// A Llama-family decoder whose blocks offer their hook points to a sink.
pub struct Llama {
    pub(crate) cfg: LlamaConfig,
    pub(crate) embed: Embedding,
    pub(crate) blocks: Vec<Block>,
    pub(crate) norm: RmsNorm,
    pub(crate) norm_weight: Tensor,
    pub(crate) unembed: Tensor,
    pub(crate) inv_freq: Tensor,
}

impl Llama {
    /// Loads weights by their Hugging Face names (`model.layers.{i}.self_attn.q_proj.weight`, ...).
    pub fn load(vb: VarBuilder, cfg: &LlamaConfig) -> Result<Llama> {
        let m = vb.pp("model");
        let embed = candle_nn::embedding(cfg.vocab_size, cfg.d_model, m.pp("embed_tokens"))?;
        let blocks = (0..cfg.n_layers)
            .map(|i| Block::load(m.pp(format!("layers.{i}")), cfg))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let norm_weight = m.pp("norm").get(cfg.d_model, "weight")?;
        let norm = RmsNorm::new(norm_weight.clone(), cfg.eps);
        let unembed = if cfg.tied_embeddings && !vb.contains_tensor("lm_head.weight") {
            embed.embeddings().clone()
        } else {
            vb.pp("lm_head")
                .get((cfg.vocab_size, cfg.d_model), "weight")?
        };
        let inv_freq = cfg.inv_freq();
        let inv_freq = Tensor::from_vec(inv_freq, (1, cfg.head_dim / 2), vb.device())?;
        Ok(Llama {
            cfg: cfg.clone(),
            embed,
            blocks,
            norm,
            norm_weight,
            unembed,
            inv_freq,
        })
    }

    /// The resolved config.
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// The final RMSNorm weight [d_model] and the unembedding [vocab, d_model] (for the logit lens).
    pub fn head(&self) -> (&Tensor, &Tensor) {
        (&self.norm_weight, &self.unembed)
    }

    fn rotary(&self, t: usize, device: &Device) -> Result<(Tensor, Tensor)> {
        let pos = Tensor::arange(0u32, t as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((t, 1))?;
        let freqs = pos.broadcast_mul(&self.inv_freq)?;
        Ok((freqs.cos()?, freqs.sin()?))
    }

    /// Runs the blocks over right-padded token ids, offering each hook to `sink` and stopping after block
    /// `stop`. Padding needs no mask: with a causal mask, real positions never see later padding.
    /// The sink may rewrite what it is offered. ids: [b, t] -> logits [b, t, vocab] when `stop` is None
    /// (every block and the head), else None.
    pub fn forward(
        &self,
        ids: &Tensor,
        sink: &mut dyn HookSink,
        stop: Option<usize>,
    ) -> Result<Option<Tensor>> {
        self.forward_with(ids, sink, stop, &mut Linearize::off())
    }

    /// [`Llama::forward`] under `lin`: differentiable, with the norms, the gated SiLU and the attention
    /// patterns it freezes.
    pub fn forward_with(
        &self,
        ids: &Tensor,
        sink: &mut dyn HookSink,
        stop: Option<usize>,
        lin: &mut Linearize,
    ) -> Result<Option<Tensor>> {
        let (_, t) = ids.dims2()?;
        let device = ids.device();
        let (cos, sin) = self.rotary(t, device)?;
        let rot = Rotary { cos, sin };
        let mask = causal_mask(t, device)?;
        let mut x = self.embed.forward(ids)?;
        for (i, block) in self.blocks.iter().enumerate() {
            if stop.is_some_and(|s| i > s) {
                return Ok(None);
            }
            let hook = |p| Hook::new(i, p);
            x = sink.offer(hook(HookPoint::ResidPre), x)?;
            let h = lin.rms_norm((i, "ln1"), &block.ln1, &x)?;
            let attn = block.attn.forward(&h, &rot, &mask, lin, i)?;
            let attn = sink.offer(hook(HookPoint::AttnOut), attn)?;
            x = (x + attn)?;
            let h = lin.rms_norm((i, "ln2"), &block.ln2, &x)?;
            let h = sink.offer(hook(HookPoint::MlpIn), h)?;
            let post = lin.silu_gate(i, &block.gate.forward(&h)?, &block.up.forward(&h)?)?;
            let post = sink.offer(hook(HookPoint::MlpPost), post)?;
            let mlp = block.down.forward(&post)?;
            let mlp = sink.offer(hook(HookPoint::MlpOut), mlp)?;
            x = (x + mlp)?;
            x = sink.offer(hook(HookPoint::ResidPost), x)?;
        }
        if stop.is_some() {
            return Ok(None);
        }
        let (b, t, d) = x.dims3()?;
        let x = lin
            .rms_norm((self.cfg.n_layers, "norm"), &self.norm, &x)?
            .reshape((b * t, d))?;
        Ok(Some(x.matmul(&self.unembed.t()?)?.reshape((b, t, ()))?))
    }
}
