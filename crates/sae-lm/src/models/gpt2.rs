//! GPT-2 decoder with hook points, in candle's style (Hugging Face Conv1D weights are [in, out]).

use candle_core::{Module, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use serde::Deserialize;

use crate::attention::causal_mask;
use crate::error::{LmError, Result};
use crate::hooks::{Hook, HookPoint, HookSink};
use crate::linearize::Linearize;

/// config.json of a GPT-2 model as Hugging Face writes it (only the fields we read).
#[derive(Debug, Clone, Deserialize)]
pub struct RawGpt2Config {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Learned positions.
    pub n_positions: usize,
    /// Residual width.
    pub n_embd: usize,
    /// Number of blocks.
    pub n_layer: usize,
    /// Attention heads.
    pub n_head: usize,
    /// MLP width; defaults to 4 * n_embd.
    #[serde(default)]
    pub n_inner: Option<usize>,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// MLP nonlinearity (`gelu_new` for GPT-2).
    #[serde(default)]
    pub activation_function: Option<String>,
}

fn default_eps() -> f64 {
    1e-5
}

/// Resolved GPT-2 settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Gpt2Config {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Learned positions.
    pub n_ctx: usize,
    /// Residual width.
    pub d_model: usize,
    /// MLP width.
    pub d_mlp: usize,
    /// Number of blocks.
    pub n_layers: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// LayerNorm epsilon.
    pub eps: f64,
}

impl RawGpt2Config {
    /// Checks and resolves the raw config.
    pub fn resolve(&self) -> std::result::Result<Gpt2Config, String> {
        let act = self.activation_function.as_deref().unwrap_or("gelu_new");
        if !matches!(act, "gelu_new" | "gelu_pytorch_tanh") {
            return Err(format!(
                "activation_function `{act}` is not supported (only gelu_new)"
            ));
        }
        if self.n_head == 0 || !self.n_embd.is_multiple_of(self.n_head) {
            return Err(format!(
                "n_embd {} is not a multiple of n_head {}",
                self.n_embd, self.n_head
            ));
        }
        Ok(Gpt2Config {
            vocab_size: self.vocab_size,
            n_ctx: self.n_positions,
            d_model: self.n_embd,
            d_mlp: self.n_inner.unwrap_or(4 * self.n_embd),
            n_layers: self.n_layer,
            n_heads: self.n_head,
            eps: self.layer_norm_epsilon,
        })
    }
}

/// A Conv1D layer of Hugging Face GPT-2: weight stored [in, out], applied as a linear map.
fn conv1d(i: usize, o: usize, vb: VarBuilder) -> candle_core::Result<Linear> {
    let w = vb.get((i, o), "weight")?.t()?.contiguous()?;
    let b = vb.get(o, "bias")?;
    Ok(Linear::new(w, Some(b)))
}

pub(crate) struct Block {
    pub(crate) ln1: LayerNorm,
    pub(crate) c_attn: Linear,
    pub(crate) c_proj: Linear,
    pub(crate) ln2: LayerNorm,
    pub(crate) c_fc: Linear,
    pub(crate) mlp_proj: Linear,
}

impl Block {
    fn load(vb: VarBuilder, c: &Gpt2Config) -> candle_core::Result<Self> {
        let d = c.d_model;
        Ok(Block {
            ln1: candle_nn::layer_norm(d, c.eps, vb.pp("ln_1"))?,
            c_attn: conv1d(d, 3 * d, vb.pp("attn.c_attn"))?,
            c_proj: conv1d(d, d, vb.pp("attn.c_proj"))?,
            ln2: candle_nn::layer_norm(d, c.eps, vb.pp("ln_2"))?,
            c_fc: conv1d(d, c.d_mlp, vb.pp("mlp.c_fc"))?,
            mlp_proj: conv1d(c.d_mlp, d, vb.pp("mlp.c_proj"))?,
        })
    }

    /// x: [b, t, d] (already normed), mask: [t, t] -> [b, t, d]
    fn attn(
        &self,
        x: &Tensor,
        n_heads: usize,
        mask: &Tensor,
        lin: &mut Linearize,
        layer: usize,
    ) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let hd = d / n_heads;
        let qkv = self.c_attn.forward(x)?;
        let head = |i: usize| -> Result<Tensor> {
            Ok(qkv
                .narrow(2, i * d, d)?
                .reshape((b, t, n_heads, hd))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let y = lin.attention(
            layer,
            &head(0)?,
            &head(1)?,
            &head(2)?,
            mask,
            1.0 / (hd as f64).sqrt(),
        )?;
        Ok(self.c_proj.forward(&y)?)
    }
}

/// A GPT-2 model whose blocks offer their hook points to a sink.
pub struct Gpt2 {
    pub(crate) cfg: Gpt2Config,
    pub(crate) wte: Embedding,
    pub(crate) wpe: Embedding,
    pub(crate) blocks: Vec<Block>,
    pub(crate) ln_f: LayerNorm,
    pub(crate) ln_f_weight: Tensor,
}

impl Gpt2 {
    /// Loads weights by their Hugging Face names, with or without the `transformer.` prefix of GPT2LMHeadModel.
    pub fn load(vb: VarBuilder, cfg: &Gpt2Config) -> Result<Gpt2> {
        let vb = if vb.contains_tensor("transformer.wte.weight") {
            vb.pp("transformer")
        } else {
            vb
        };
        let wte = candle_nn::embedding(cfg.vocab_size, cfg.d_model, vb.pp("wte"))?;
        let wpe = candle_nn::embedding(cfg.n_ctx, cfg.d_model, vb.pp("wpe"))?;
        let blocks = (0..cfg.n_layers)
            .map(|i| Block::load(vb.pp(format!("h.{i}")), cfg))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let ln_f = candle_nn::layer_norm(cfg.d_model, cfg.eps, vb.pp("ln_f"))?;
        let ln_f_weight = vb.pp("ln_f").get(cfg.d_model, "weight")?;
        Ok(Gpt2 {
            cfg: cfg.clone(),
            wte,
            wpe,
            blocks,
            ln_f,
            ln_f_weight,
        })
    }

    /// The resolved config.
    pub fn config(&self) -> &Gpt2Config {
        &self.cfg
    }

    /// The final LayerNorm weight [d_model] and the (tied) unembedding [vocab, d_model].
    pub fn head(&self) -> (&Tensor, &Tensor) {
        (&self.ln_f_weight, self.wte.embeddings())
    }

    /// Runs the blocks over right-padded token ids, offering each hook to `sink` (which may rewrite it),
    /// stopping after block `stop`. ids: [b, t] (t <= n_ctx) -> logits [b, t, vocab] when `stop` is None
    /// (every block and the head), else None.
    pub fn forward(
        &self,
        ids: &Tensor,
        sink: &mut dyn HookSink,
        stop: Option<usize>,
    ) -> Result<Option<Tensor>> {
        self.forward_with(ids, sink, stop, &mut Linearize::off())
    }

    /// [`Gpt2::forward`] under `lin`: differentiable, with the norms, GELU and attention patterns it freezes.
    pub fn forward_with(
        &self,
        ids: &Tensor,
        sink: &mut dyn HookSink,
        stop: Option<usize>,
        lin: &mut Linearize,
    ) -> Result<Option<Tensor>> {
        let (_, t) = ids.dims2()?;
        let device = ids.device();
        if t > self.cfg.n_ctx {
            return Err(LmError::Invalid(format!(
                "context of {t} tokens is longer than GPT-2's {} positions",
                self.cfg.n_ctx
            )));
        }
        let mask = causal_mask(t, device)?;
        let pos = Tensor::arange(0u32, t as u32, device)?;
        let mut x = self
            .wte
            .forward(ids)?
            .broadcast_add(&self.wpe.forward(&pos)?)?;
        for (i, block) in self.blocks.iter().enumerate() {
            if stop.is_some_and(|s| i > s) {
                return Ok(None);
            }
            let hook = |p| Hook::new(i, p);
            x = sink.offer(hook(HookPoint::ResidPre), x)?;
            let h = lin.layer_norm((i, "ln1"), &block.ln1, &x)?;
            let attn = block.attn(&h, self.cfg.n_heads, &mask, lin, i)?;
            let attn = sink.offer(hook(HookPoint::AttnOut), attn)?;
            x = (x + attn)?;
            let h = lin.layer_norm((i, "ln2"), &block.ln2, &x)?;
            let h = sink.offer(hook(HookPoint::MlpIn), h)?;
            let post = lin.gelu((i, "gelu"), &block.c_fc.forward(&h)?, false)?;
            let post = sink.offer(hook(HookPoint::MlpPost), post)?;
            let mlp = block.mlp_proj.forward(&post)?;
            let mlp = sink.offer(hook(HookPoint::MlpOut), mlp)?;
            x = (x + mlp)?;
            x = sink.offer(hook(HookPoint::ResidPost), x)?;
        }
        if stop.is_some() {
            return Ok(None);
        }
        let (b, t, d) = x.dims3()?;
        let x = lin
            .layer_norm((self.cfg.n_layers, "ln_f"), &self.ln_f, &x)?
            .reshape((b * t, d))?;
        Ok(Some(x.matmul(&self.wte.embeddings().t()?)?.reshape((
            b,
            t,
            (),
        ))?))
    }
}
