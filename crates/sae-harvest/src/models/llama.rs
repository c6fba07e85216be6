//! Llama-family decoder (Llama 2/3, SmolLM2, TinyLlama, Mistral, Qwen2) with hook points, in candle's style.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Embedding, Linear, RmsNorm, VarBuilder};
use serde::Deserialize;

use crate::attention::{attention, causal_mask};
use crate::error::Result;
use crate::hooks::{Hook, HookPoint, HookSink};

/// config.json of a Llama-family model as Hugging Face writes it (only the fields we read).
#[derive(Debug, Clone, Deserialize)]
pub struct RawLlamaConfig {
    /// `llama`, `mistral`, `qwen2`, ...
    #[serde(default)]
    pub model_type: Option<String>,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Residual width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Number of blocks.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention); defaults to the query heads.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Per-head width; defaults to hidden_size / heads.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// Rotary base.
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// Rotary frequency scaling (`llama3`, `linear`, `default`).
    #[serde(default)]
    pub rope_scaling: Option<RawRopeScaling>,
    /// transformers >= 5 writes the rotary base and scaling here instead.
    #[serde(default)]
    pub rope_parameters: Option<RawRopeScaling>,
    /// Qwen2 sliding-window attention (not supported when on).
    #[serde(default)]
    pub use_sliding_window: Option<bool>,
    /// Whether lm_head shares the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
    /// Biases on q, k, v and o projections (Llama).
    #[serde(default)]
    pub attention_bias: Option<bool>,
    /// Biases on the MLP projections.
    #[serde(default)]
    pub mlp_bias: Option<bool>,
    /// MLP nonlinearity.
    #[serde(default)]
    pub hidden_act: Option<String>,
}

/// The `rope_scaling` object of config.json.
#[derive(Debug, Clone, Deserialize)]
pub struct RawRopeScaling {
    /// `llama3`, `linear` or `default` (older configs call it `type`).
    #[serde(alias = "type", default = "default_rope_type")]
    pub rope_type: String,
    /// Rotary base (in `rope_parameters` only).
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// Scaling factor.
    #[serde(default)]
    pub factor: Option<f64>,
    /// llama3: low-frequency factor.
    #[serde(default)]
    pub low_freq_factor: Option<f64>,
    /// llama3: high-frequency factor.
    #[serde(default)]
    pub high_freq_factor: Option<f64>,
    /// llama3: the pre-training context length.
    #[serde(default)]
    pub original_max_position_embeddings: Option<f64>,
}

fn default_rope_type() -> String {
    "default".into()
}

/// How rotary frequencies are rescaled.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Plain frequencies.
    None,
    /// All frequencies divided by `factor`.
    Linear {
        /// Divisor.
        factor: f64,
    },
    /// Llama 3's piecewise scaling by wavelength.
    Llama3 {
        /// Divisor for low frequencies.
        factor: f64,
        /// Wavelengths above original / low_freq_factor are fully scaled.
        low_freq_factor: f64,
        /// Wavelengths below original / high_freq_factor are kept.
        high_freq_factor: f64,
        /// Pre-training context length.
        original: f64,
    },
}

/// Resolved Llama-family settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Residual width.
    pub d_model: usize,
    /// MLP width.
    pub d_mlp: usize,
    /// Number of blocks.
    pub n_layers: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Per-head width.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub eps: f64,
    /// Rotary base.
    pub rope_theta: f64,
    /// Rotary scaling.
    pub rope_scaling: RopeScaling,
    /// GGUF checkpoints store q/k rows permuted for interleaved rotary pairs (llama.cpp); HF uses halves.
    pub rope_interleaved: bool,
    /// lm_head is the embedding matrix.
    pub tied_embeddings: bool,
    /// Biases on q, k, v.
    pub qkv_bias: bool,
    /// Bias on o.
    pub o_bias: bool,
    /// Biases on the MLP projections.
    pub mlp_bias: bool,
}

impl RawLlamaConfig {
    /// Checks and resolves the raw config.
    pub fn resolve(&self) -> std::result::Result<LlamaConfig, String> {
        let act = self.hidden_act.as_deref().unwrap_or("silu");
        if act != "silu" {
            return Err(format!("hidden_act `{act}` is not supported (only silu)"));
        }
        let n_kv_heads = self.num_key_value_heads.unwrap_or(self.num_attention_heads);
        if self.num_attention_heads == 0
            || n_kv_heads == 0
            || !self.num_attention_heads.is_multiple_of(n_kv_heads)
        {
            return Err(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {n_kv_heads}",
                self.num_attention_heads
            ));
        }
        let head_dim = self
            .head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads);
        if self.use_sliding_window == Some(true) {
            return Err("sliding-window attention is not supported".into());
        }
        let rope = self.rope_scaling.as_ref().or(self.rope_parameters.as_ref());
        let rope_theta = self
            .rope_theta
            .or(self.rope_parameters.as_ref().and_then(|p| p.rope_theta))
            .unwrap_or(10_000.0);
        let rope_scaling = match rope {
            None => RopeScaling::None,
            Some(s) => match s.rope_type.as_str() {
                "default" => RopeScaling::None,
                "linear" => RopeScaling::Linear {
                    factor: s.factor.unwrap_or(1.0),
                },
                "llama3" => RopeScaling::Llama3 {
                    factor: s.factor.unwrap_or(8.0),
                    low_freq_factor: s.low_freq_factor.unwrap_or(1.0),
                    high_freq_factor: s.high_freq_factor.unwrap_or(4.0),
                    original: s.original_max_position_embeddings.unwrap_or(8192.0),
                },
                other => return Err(format!("rope_scaling type `{other}` is not supported")),
            },
        };
        let qwen2 = self.model_type.as_deref() == Some("qwen2");
        let attention_bias = self.attention_bias.unwrap_or(false);
        Ok(LlamaConfig {
            vocab_size: self.vocab_size,
            d_model: self.hidden_size,
            d_mlp: self.intermediate_size,
            n_layers: self.num_hidden_layers,
            n_heads: self.num_attention_heads,
            n_kv_heads,
            head_dim,
            eps: self.rms_norm_eps,
            rope_theta,
            rope_scaling,
            rope_interleaved: false,
            tied_embeddings: self.tie_word_embeddings.unwrap_or(false),
            qkv_bias: qwen2 || attention_bias,
            o_bias: attention_bias,
            mlp_bias: self.mlp_bias.unwrap_or(false),
        })
    }
}

impl LlamaConfig {
    /// Rotary inverse frequencies after scaling. -> [head_dim / 2]
    pub fn inv_freq(&self) -> Vec<f32> {
        let hd = self.head_dim as f64;
        (0..self.head_dim / 2)
            .map(|i| {
                let f = 1.0 / self.rope_theta.powf((2 * i) as f64 / hd);
                let f = match self.rope_scaling {
                    RopeScaling::None => f,
                    RopeScaling::Linear { factor } => f / factor,
                    RopeScaling::Llama3 {
                        factor,
                        low_freq_factor,
                        high_freq_factor,
                        original,
                    } => {
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        if wavelen < original / high_freq_factor {
                            f
                        } else if wavelen > original / low_freq_factor {
                            f / factor
                        } else {
                            let smooth = (original / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    }
                };
                f as f32
            })
            .collect()
    }
}

fn lin(i: usize, o: usize, bias: bool, vb: VarBuilder) -> candle_core::Result<Linear> {
    if bias {
        candle_nn::linear(i, o, vb)
    } else {
        candle_nn::linear_no_bias(i, o, vb)
    }
}

/// Self-attention with rotary positions.
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    interleaved: bool,
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
    fn forward(&self, x: &Tensor, cos: &Tensor, sin: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let split = |y: Tensor, h: usize| -> Result<Tensor> {
            Ok(y.reshape((b, t, h, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = split(self.q.forward(x)?, self.n_heads)?;
        let k = split(self.k.forward(x)?, self.n_kv_heads)?;
        let v = split(self.v.forward(x)?, self.n_kv_heads)?;
        let rope = if self.interleaved {
            candle_nn::rotary_emb::rope_i
        } else {
            candle_nn::rotary_emb::rope
        };
        let q = rope(&q, cos, sin)?;
        let k = rope(&k, cos, sin)?;
        let y = attention(&q, &k, &v, Some(mask), 1.0 / (self.head_dim as f64).sqrt())?;
        Ok(self.o.forward(&y)?)
    }
}

/// One decoder block: pre-norm attention and a gated SiLU MLP.
struct Block {
    ln1: RmsNorm,
    attn: Attention,
    ln2: RmsNorm,
    gate: Linear,
    up: Linear,
    down: Linear,
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
    cfg: LlamaConfig,
    embed: Embedding,
    blocks: Vec<Block>,
    norm: RmsNorm,
    norm_weight: Tensor,
    unembed: Tensor,
    inv_freq: Tensor,
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

    /// Runs the blocks over right-padded token ids, offering each hook to `sink` and stopping after the last
    /// block it needs. Padding needs no mask: with a causal mask, real positions never see later padding.
    /// ids: [b, t] -> logits [b, t, vocab] when the sink needs no block (`last_layer() == None`), else None.
    pub fn forward(&self, ids: &Tensor, sink: &mut dyn HookSink) -> Result<Option<Tensor>> {
        let (_, t) = ids.dims2()?;
        let device = ids.device();
        let (cos, sin) = self.rotary(t, device)?;
        let mask = causal_mask(t, device)?;
        let stop = sink.last_layer();
        let mut x = self.embed.forward(ids)?;
        for (i, block) in self.blocks.iter().enumerate() {
            if stop.is_some_and(|s| i > s) {
                return Ok(None);
            }
            let hook = |p| Hook::new(i, p);
            if sink.wants(hook(HookPoint::ResidPre)) {
                sink.put(hook(HookPoint::ResidPre), &x)?;
            }
            let attn = block
                .attn
                .forward(&block.ln1.forward(&x)?, &cos, &sin, &mask)?;
            if sink.wants(hook(HookPoint::AttnOut)) {
                sink.put(hook(HookPoint::AttnOut), &attn)?;
            }
            x = (x + attn)?;
            let h = block.ln2.forward(&x)?;
            let post = (candle_nn::ops::silu(&block.gate.forward(&h)?)? * block.up.forward(&h)?)?;
            if sink.wants(hook(HookPoint::MlpPost)) {
                sink.put(hook(HookPoint::MlpPost), &post)?;
            }
            let mlp = block.down.forward(&post)?;
            if sink.wants(hook(HookPoint::MlpOut)) {
                sink.put(hook(HookPoint::MlpOut), &mlp)?;
            }
            x = (x + mlp)?;
            if sink.wants(hook(HookPoint::ResidPost)) {
                sink.put(hook(HookPoint::ResidPost), &x)?;
            }
        }
        if stop.is_some() {
            return Ok(None);
        }
        let (b, t, d) = x.dims3()?;
        let x = self.norm.forward(&x)?.reshape((b * t, d))?;
        Ok(Some(x.matmul(&self.unembed.t()?)?.reshape((b, t, ()))?))
    }
}
