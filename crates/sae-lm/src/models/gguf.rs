//! GGUF checkpoints of Llama-family models: metadata into a resolved Llama config, tensors dequantized to f32
//! at load (candle has no fast kernels for most quantized types) and renamed to Hugging Face module paths.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{Device, Tensor};

use crate::error::{LmError, Result};
use crate::models::llama::{LlamaConfig, RopeScaling};

/// A parsed GGUF file: its metadata and where it lives (tensors are read on demand).
pub struct GgufFile {
    /// The .gguf file.
    pub path: PathBuf,
    /// Header, metadata and tensor index.
    pub content: Content,
}

impl GgufFile {
    /// Reads the header and metadata.
    pub fn open(path: &Path) -> Result<GgufFile> {
        let file = File::open(path).map_err(|source| LmError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let content =
            Content::read(&mut BufReader::new(file)).map_err(|e| LmError::BadWeights {
                path: path.to_path_buf(),
                message: format!("not a readable GGUF file: {e}"),
            })?;
        Ok(GgufFile {
            path: path.to_path_buf(),
            content,
        })
    }

    /// A metadata value, or a BadConfig error naming the key.
    pub fn meta(&self, key: &str) -> Result<&Value> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| self.bad(format!("missing metadata `{key}`")))
    }

    /// A metadata value if present.
    pub fn meta_opt(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    fn bad(&self, message: String) -> LmError {
        LmError::BadConfig {
            path: self.path.clone(),
            message,
        }
    }

    fn num(&self, key: &str) -> Result<f64> {
        let v = self.meta(key)?;
        v.to_f64()
            .or_else(|_| v.to_f32().map(f64::from))
            .or_else(|_| v.to_u32().map(f64::from))
            .or_else(|_| v.to_u64().map(|x| x as f64))
            .or_else(|_| v.to_i32().map(f64::from))
            .map_err(|e| self.bad(format!("`{key}`: {e}")))
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Result<String> {
        Ok(self
            .meta("general.architecture")?
            .to_string()
            .map_err(|e| self.bad(e.to_string()))?
            .clone())
    }

    /// The Llama config its metadata describes (architectures `llama`, `mistral`, `qwen2`).
    pub fn llama_config(&self) -> Result<LlamaConfig> {
        let arch = self.architecture()?;
        if !matches!(arch.as_str(), "llama" | "mistral" | "qwen2") {
            return Err(LmError::UnsupportedArchitecture {
                arch: format!("{arch} (GGUF)"),
            });
        }
        if self.content.tensor_infos.contains_key("rope_freqs.weight") {
            return Err(self
                .bad("per-frequency rope factors (`rope_freqs.weight`) are not supported".into()));
        }
        let key = |k: &str| format!("{arch}.{k}");
        let d_model = self.num(&key("embedding_length"))? as usize;
        let n_heads = self.num(&key("attention.head_count"))? as usize;
        let n_kv_heads = self
            .num(&key("attention.head_count_kv"))
            .unwrap_or(n_heads as f64) as usize;
        let vocab_size = match self.meta_opt(&key("vocab_size")) {
            Some(_) => self.num(&key("vocab_size"))? as usize,
            None => self
                .meta("tokenizer.ggml.tokens")?
                .to_vec()
                .map_err(|e| self.bad(e.to_string()))?
                .len(),
        };
        if n_heads == 0
            || n_kv_heads == 0
            || !n_heads.is_multiple_of(n_kv_heads)
            || !d_model.is_multiple_of(n_heads)
        {
            return Err(self.bad(format!(
                "inconsistent heads: {n_heads} query, {n_kv_heads} key/value, width {d_model}"
            )));
        }
        let head_dim = match self.meta_opt(&key("attention.key_length")) {
            Some(_) => self.num(&key("attention.key_length"))? as usize,
            None => d_model / n_heads,
        };
        let has = |n: &str| self.content.tensor_infos.contains_key(n);
        Ok(LlamaConfig {
            vocab_size,
            d_model,
            d_mlp: self.num(&key("feed_forward_length"))? as usize,
            n_layers: self.num(&key("block_count"))? as usize,
            n_heads,
            n_kv_heads,
            head_dim,
            eps: self.num(&key("attention.layer_norm_rms_epsilon"))?,
            rope_theta: self.num(&key("rope.freq_base")).unwrap_or(10_000.0),
            rope_scaling: match self
                .meta_opt(&key("rope.scaling.type"))
                .and_then(|v| v.to_string().ok())
            {
                Some(t) if t == "linear" => RopeScaling::Linear {
                    factor: self.num(&key("rope.scaling.factor"))?,
                },
                Some(t) if t != "none" => {
                    return Err(self.bad(format!("rope scaling `{t}` is not supported")))
                }
                _ => RopeScaling::None,
            },
            // llama.cpp permutes Llama's q/k rows for interleaved rotary pairs; Qwen2 keeps halves (NeoX).
            rope_interleaved: arch != "qwen2",
            tied_embeddings: !has("output.weight"),
            qkv_bias: has("blk.0.attn_q.bias"),
            o_bias: has("blk.0.attn_output.bias"),
            mlp_bias: has("blk.0.ffn_up.bias"),
        })
    }

    /// Every tensor dequantized to f32, under its Hugging Face name.
    pub fn hf_tensors(&self, device: &Device) -> Result<HashMap<String, Tensor>> {
        let file = File::open(&self.path).map_err(|source| LmError::Io {
            path: self.path.clone(),
            source,
        })?;
        let mut reader = BufReader::new(file);
        let mut out = HashMap::new();
        let mut names: Vec<&String> = self.content.tensor_infos.keys().collect();
        names.sort();
        for name in names {
            let Some(hf) = hf_name(name) else { continue };
            let q = self
                .content
                .tensor(&mut reader, name, device)
                .map_err(|e| LmError::BadWeights {
                    path: self.path.clone(),
                    message: format!("tensor `{name}`: {e}"),
                })?;
            out.insert(hf, q.dequantize(device)?);
        }
        Ok(out)
    }
}

/// The Hugging Face module path of a llama.cpp tensor name (`blk.3.attn_q.weight` ->
/// `model.layers.3.self_attn.q_proj.weight`); `None` for tensors the model does not use.
pub fn hf_name(gguf: &str) -> Option<String> {
    let top = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(t) = top {
        return Some(t.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (module, param) = rest.rsplit_once('.')?;
    let hf = match module {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{param}"))
}

#[cfg(test)]
mod tests {
    use super::hf_name;

    #[test]
    fn gguf_names_map_to_hf_module_paths() {
        assert_eq!(
            hf_name("blk.12.attn_q.weight").as_deref(),
            Some("model.layers.12.self_attn.q_proj.weight")
        );
        assert_eq!(
            hf_name("blk.0.ffn_down.weight").as_deref(),
            Some("model.layers.0.mlp.down_proj.weight")
        );
        assert_eq!(
            hf_name("blk.0.attn_k.bias").as_deref(),
            Some("model.layers.0.self_attn.k_proj.bias")
        );
        assert_eq!(
            hf_name("token_embd.weight").as_deref(),
            Some("model.embed_tokens.weight")
        );
        assert_eq!(hf_name("rope_freqs.weight"), None);
    }
}
