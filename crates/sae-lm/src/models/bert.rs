//! BERT encoder (MiniLM and friends) with hook points, in candle's style (post-LayerNorm blocks).

use candle_core::{Module, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use serde::Deserialize;

use crate::attention::padding_mask;
use crate::error::{LmError, Result};
use crate::hooks::{Hook, HookPoint, HookSink};
use crate::linearize::Linearize;

/// config.json of a BERT model as Hugging Face writes it (only the fields we read).
#[derive(Debug, Clone, Deserialize)]
pub struct RawBertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Residual width.
    pub hidden_size: usize,
    /// Number of blocks.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// MLP nonlinearity (`gelu` is the exact erf form).
    #[serde(default)]
    pub hidden_act: Option<String>,
    /// Learned positions.
    pub max_position_embeddings: usize,
    /// Token types (segments).
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Only `absolute` is supported.
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

fn default_type_vocab() -> usize {
    2
}

fn default_eps() -> f64 {
    1e-12
}

/// Resolved BERT settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Residual width.
    pub d_model: usize,
    /// MLP width.
    pub d_mlp: usize,
    /// Number of blocks.
    pub n_layers: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Learned positions.
    pub n_ctx: usize,
    /// Token types.
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    pub eps: f64,
    /// tanh-approximate GELU instead of the exact erf form.
    pub gelu_tanh: bool,
}

impl RawBertConfig {
    /// Checks and resolves the raw config.
    pub fn resolve(&self) -> std::result::Result<BertConfig, String> {
        let gelu_tanh = match self.hidden_act.as_deref().unwrap_or("gelu") {
            "gelu" => false,
            "gelu_new" | "gelu_pytorch_tanh" => true,
            other => {
                return Err(format!(
                    "hidden_act `{other}` is not supported (gelu, gelu_new)"
                ))
            }
        };
        let pos = self
            .position_embedding_type
            .as_deref()
            .unwrap_or("absolute");
        if pos != "absolute" {
            return Err(format!(
                "position_embedding_type `{pos}` is not supported (only absolute)"
            ));
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        Ok(BertConfig {
            vocab_size: self.vocab_size,
            d_model: self.hidden_size,
            d_mlp: self.intermediate_size,
            n_layers: self.num_hidden_layers,
            n_heads: self.num_attention_heads,
            n_ctx: self.max_position_embeddings,
            type_vocab_size: self.type_vocab_size,
            eps: self.layer_norm_eps,
            gelu_tanh,
        })
    }
}

/// LayerNorm under `name`, accepting the old `gamma`/`beta` weight names too.
fn layer_norm(d: usize, eps: f64, vb: VarBuilder) -> candle_core::Result<LayerNorm> {
    let (w, b) = if vb.contains_tensor("gamma") {
        ("gamma", "beta")
    } else {
        ("weight", "bias")
    };
    Ok(LayerNorm::new(vb.get(d, w)?, vb.get(d, b)?, eps))
}

pub(crate) struct Block {
    pub(crate) q: Linear,
    pub(crate) k: Linear,
    pub(crate) v: Linear,
    pub(crate) attn_out: Linear,
    pub(crate) ln_attn: LayerNorm,
    pub(crate) inter: Linear,
    pub(crate) out: Linear,
    pub(crate) ln_out: LayerNorm,
}

impl Block {
    fn load(vb: VarBuilder, c: &BertConfig) -> candle_core::Result<Self> {
        let d = c.d_model;
        let sa = vb.pp("attention.self");
        Ok(Block {
            q: candle_nn::linear(d, d, sa.pp("query"))?,
            k: candle_nn::linear(d, d, sa.pp("key"))?,
            v: candle_nn::linear(d, d, sa.pp("value"))?,
            attn_out: candle_nn::linear(d, d, vb.pp("attention.output.dense"))?,
            ln_attn: layer_norm(d, c.eps, vb.pp("attention.output.LayerNorm"))?,
            inter: candle_nn::linear(d, c.d_mlp, vb.pp("intermediate.dense"))?,
            out: candle_nn::linear(c.d_mlp, d, vb.pp("output.dense"))?,
            ln_out: layer_norm(d, c.eps, vb.pp("output.LayerNorm"))?,
        })
    }
}

/// A BERT encoder whose blocks offer their hook points to a sink.
pub struct Bert {
    pub(crate) cfg: BertConfig,
    pub(crate) word: Embedding,
    pub(crate) position: Embedding,
    pub(crate) token_type: Embedding,
    pub(crate) ln_embed: LayerNorm,
    pub(crate) blocks: Vec<Block>,
}

impl Bert {
    /// Loads weights by their Hugging Face names, with or without the `bert.` prefix.
    pub fn load(vb: VarBuilder, cfg: &BertConfig) -> Result<Bert> {
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        let e = vb.pp("embeddings");
        let blocks = (0..cfg.n_layers)
            .map(|i| Block::load(vb.pp(format!("encoder.layer.{i}")), cfg))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Bert {
            cfg: cfg.clone(),
            word: candle_nn::embedding(cfg.vocab_size, cfg.d_model, e.pp("word_embeddings"))?,
            position: candle_nn::embedding(cfg.n_ctx, cfg.d_model, e.pp("position_embeddings"))?,
            token_type: candle_nn::embedding(
                cfg.type_vocab_size,
                cfg.d_model,
                e.pp("token_type_embeddings"),
            )?,
            ln_embed: layer_norm(cfg.d_model, cfg.eps, e.pp("LayerNorm"))?,
            blocks,
        })
    }

    /// The resolved config.
    pub fn config(&self) -> &BertConfig {
        &self.cfg
    }

    /// Runs the blocks over right-padded token ids (token type 0), padding masked out of attention by `lengths`,
    /// offering each hook to `sink` and stopping after the last block it needs. ids: [b, t]
    pub fn forward(&self, ids: &Tensor, lengths: &[usize], sink: &mut dyn HookSink) -> Result<()> {
        self.forward_with(ids, lengths, sink, &mut Linearize::off())
    }

    /// [`Bert::forward`] under `lin`: differentiable, with the norms, GELU and attention patterns it freezes.
    pub fn forward_with(
        &self,
        ids: &Tensor,
        lengths: &[usize],
        sink: &mut dyn HookSink,
        lin: &mut Linearize,
    ) -> Result<()> {
        let (b, t) = ids.dims2()?;
        let device = ids.device();
        if t > self.cfg.n_ctx {
            return Err(LmError::Invalid(format!(
                "context of {t} tokens is longer than BERT's {} positions",
                self.cfg.n_ctx
            )));
        }
        if lengths.len() != b {
            return Err(LmError::Invalid(format!(
                "{} lengths for a batch of {b}",
                lengths.len()
            )));
        }
        let mask = padding_mask(lengths, t, device)?;
        let pos = Tensor::arange(0u32, t as u32, device)?;
        let types = Tensor::zeros(t, candle_core::DType::U32, device)?;
        let emb = self
            .word
            .forward(ids)?
            .broadcast_add(&(self.position.forward(&pos)? + self.token_type.forward(&types)?)?)?;
        let mut x = lin.layer_norm((0, "ln_embed"), &self.ln_embed, &emb)?;
        let (heads, hd) = (self.cfg.n_heads, self.cfg.d_model / self.cfg.n_heads);
        let stop = sink.last_layer();
        for (i, block) in self.blocks.iter().enumerate() {
            if stop.is_some_and(|s| i > s) {
                break;
            }
            let hook = |p| Hook::new(i, p);
            x = sink.offer(hook(HookPoint::ResidPre), x)?;
            let split = |l: &Linear| -> Result<Tensor> {
                Ok(l.forward(&x)?
                    .reshape((b, t, heads, hd))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let y = lin.attention(
                i,
                &split(&block.q)?,
                &split(&block.k)?,
                &split(&block.v)?,
                &mask,
                1.0 / (hd as f64).sqrt(),
            )?;
            let attn = block.attn_out.forward(&y)?;
            let attn = sink.offer(hook(HookPoint::AttnOut), attn)?;
            let mid = lin.layer_norm((i, "ln_attn"), &block.ln_attn, &(attn + &x)?)?;
            let mid = sink.offer(hook(HookPoint::MlpIn), mid)?;
            let pre = block.inter.forward(&mid)?;
            let post = lin.gelu((i, "gelu"), &pre, !self.cfg.gelu_tanh)?;
            let post = sink.offer(hook(HookPoint::MlpPost), post)?;
            let mlp = block.out.forward(&post)?;
            let mlp = sink.offer(hook(HookPoint::MlpOut), mlp)?;
            x = lin.layer_norm((i, "ln_out"), &block.ln_out, &(mlp + mid)?)?;
            x = sink.offer(hook(HookPoint::ResidPost), x)?;
        }
        Ok(())
    }
}
