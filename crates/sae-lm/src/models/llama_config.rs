//! Llama-family config.json (raw, as Hugging Face writes it) resolved into the settings the model code uses.

use serde::Deserialize;

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
