//! The supported architectures (one file each) behind one `Model` that loads from resolved files and runs
//! a forward pass offering hook points to a sink.

pub mod bert;
pub mod gguf;
pub mod gpt2;
pub mod llama;
pub mod llama_config;
mod padded;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::de::DeserializeOwned;

use crate::error::{LmError, Result};
use crate::fast::bert::FastBert;
use crate::fast::gpt2::FastGpt2;
use crate::fast::llama::FastLlama;
use crate::fast::{Packed, RowSink};
use crate::files::ModelFiles;
use crate::hooks::{all_hooks, Hook, HookPoint, HookSink};
use crate::hub::ResolvedModel;
use crate::linearize::Linearize;
use padded::Padded;

/// A loaded model of one of the supported architectures: the candle model (the reference forward, the
/// head) and the same weights on the fast path.
pub struct Model {
    reference: Reference,
    fast: Fast,
}

enum Reference {
    Gpt2(gpt2::Gpt2),
    Llama(llama::Llama),
    Bert(bert::Bert),
}

enum Fast {
    Gpt2(FastGpt2),
    Llama(FastLlama),
    Bert(FastBert),
}

impl Reference {
    fn fast(&self) -> Result<Fast> {
        Ok(match self {
            Reference::Gpt2(m) => Fast::Gpt2(FastGpt2::new(m)?),
            Reference::Llama(m) => Fast::Llama(FastLlama::new(m)?),
            Reference::Bert(m) => Fast::Bert(FastBert::new(m)?),
        })
    }
}

/// The shapes that matter to a harvest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelDims {
    /// Number of blocks.
    pub n_layers: usize,
    /// Residual width.
    pub d_model: usize,
    /// MLP hidden width (the width of `mlp.hook_post`).
    pub d_mlp: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Longest context the model's positions allow (`None`: rotary, unbounded here).
    pub max_ctx: Option<usize>,
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| LmError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| LmError::BadConfig {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// `model_type` (or else the first of `architectures`) of a config.json.
fn model_type(config: &Path) -> Result<String> {
    let v: serde_json::Value = read_json(config)?;
    if let Some(t) = v.get("model_type").and_then(|t| t.as_str()) {
        return Ok(t.to_string());
    }
    let arch = v
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(|a| a.as_str())
        .ok_or_else(|| LmError::BadConfig {
            path: config.to_path_buf(),
            message: "neither `model_type` nor `architectures` is set".into(),
        })?;
    Ok(match arch {
        a if a.starts_with("GPT2") => "gpt2".into(),
        a if a.starts_with("Bert") => "bert".into(),
        a if a.starts_with("Llama") => "llama".into(),
        other => other.to_string(),
    })
}

fn resolve<R: DeserializeOwned, C>(
    config: &Path,
    f: impl Fn(&R) -> std::result::Result<C, String>,
) -> Result<C> {
    let raw: R = read_json(config)?;
    f(&raw).map_err(|message| LmError::BadConfig {
        path: config.to_path_buf(),
        message,
    })
}

fn bad_weights(paths: &[PathBuf], err: LmError) -> LmError {
    match err {
        LmError::Candle(e) => LmError::BadWeights {
            path: if paths.len() == 1 {
                paths[0].clone()
            } else {
                paths
                    .first()
                    .and_then(|p| p.parent())
                    .map(Path::to_path_buf)
                    .unwrap_or_default()
            },
            message: e.to_string(),
        },
        other => other,
    }
}

impl Model {
    /// Loads a resolved model onto `device`, in f32.
    pub fn load(model: &ResolvedModel, device: &Device) -> Result<Model> {
        let reference = Self::load_reference(model, device)?;
        let fast = reference.fast()?;
        Ok(Model { reference, fast })
    }

    fn load_reference(model: &ResolvedModel, device: &Device) -> Result<Reference> {
        match &model.files {
            ModelFiles::Gguf { file } => {
                let g = gguf::GgufFile::open(file)?;
                let cfg = g.llama_config()?;
                let tensors = g
                    .hf_tensors(device)
                    .map_err(|e| bad_weights(std::slice::from_ref(file), e))?;
                let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
                Ok(Reference::Llama(
                    llama::Llama::load(vb, &cfg)
                        .map_err(|e| bad_weights(std::slice::from_ref(file), e))?,
                ))
            }
            ModelFiles::Safetensors {
                config, weights, ..
            } => {
                let kind = model_type(config)?;
                for w in weights {
                    if !w.is_file() {
                        return Err(LmError::MissingFile {
                            what: "weights file",
                            path: w.clone(),
                        });
                    }
                }
                let load_vb = || -> Result<VarBuilder<'static>> {
                    // SAFETY: the files are mapped read-only; we never write to them while mapped.
                    let vb =
                        unsafe { VarBuilder::from_mmaped_safetensors(weights, DType::F32, device) };
                    vb.map_err(|e| bad_weights(weights, e.into()))
                };
                let m = match kind.as_str() {
                    "gpt2" => {
                        let cfg = resolve(config, gpt2::RawGpt2Config::resolve)?;
                        gpt2::Gpt2::load(load_vb()?, &cfg).map(Reference::Gpt2)
                    }
                    "llama" | "mistral" | "qwen2" => {
                        let cfg = resolve(config, llama::RawLlamaConfig::resolve)?;
                        llama::Llama::load(load_vb()?, &cfg).map(Reference::Llama)
                    }
                    "bert" => {
                        let cfg = resolve(config, bert::RawBertConfig::resolve)?;
                        bert::Bert::load(load_vb()?, &cfg).map(Reference::Bert)
                    }
                    other => {
                        return Err(LmError::UnsupportedArchitecture {
                            arch: other.to_string(),
                        })
                    }
                };
                m.map_err(|e| bad_weights(weights, e))
            }
        }
    }

    /// Block count, widths, vocabulary.
    pub fn dims(&self) -> ModelDims {
        match &self.reference {
            Reference::Gpt2(m) => {
                let c = m.config();
                ModelDims {
                    n_layers: c.n_layers,
                    d_model: c.d_model,
                    d_mlp: c.d_mlp,
                    vocab_size: c.vocab_size,
                    max_ctx: Some(c.n_ctx),
                }
            }
            Reference::Llama(m) => {
                let c = m.config();
                ModelDims {
                    n_layers: c.n_layers,
                    d_model: c.d_model,
                    d_mlp: c.d_mlp,
                    vocab_size: c.vocab_size,
                    max_ctx: None,
                }
            }
            Reference::Bert(m) => {
                let c = m.config();
                ModelDims {
                    n_layers: c.n_layers,
                    d_model: c.d_model,
                    d_mlp: c.d_mlp,
                    vocab_size: c.vocab_size,
                    max_ctx: Some(c.n_ctx),
                }
            }
        }
    }

    /// Multiply-add FLOPs (2 per multiply-add) per token of a forward pass through the first `layers` blocks
    /// of contexts of `ctx_len` tokens: the projections and MLP matmuls plus Q K^T and P V over the full
    /// ctx_len x ctx_len score tile of each head (what the attention computes, causal or not).
    pub fn flops_per_token(&self, ctx_len: usize, layers: usize) -> f64 {
        let (d, m) = (self.dims().d_model, self.dims().d_mlp);
        let (heads, kv, hd, mlp_mats) = match &self.reference {
            Reference::Gpt2(g) => {
                let c = g.config();
                (c.n_heads, c.n_heads, d / c.n_heads, 2)
            }
            Reference::Bert(b) => {
                let c = b.config();
                (c.n_heads, c.n_heads, d / c.n_heads, 2)
            }
            Reference::Llama(l) => {
                let c = l.config();
                (c.n_heads, c.n_kv_heads, c.head_dim, 3)
            }
        };
        let proj = d * (heads + 2 * kv) * hd + heads * hd * d;
        let mlp = mlp_mats * d * m;
        let attn = 2 * ctx_len * heads * hd;
        (2 * (proj + mlp + attn) * layers) as f64
    }

    /// A short architecture name.
    pub fn arch(&self) -> &'static str {
        match self.reference {
            Reference::Gpt2(_) => "gpt2",
            Reference::Llama(_) => "llama",
            Reference::Bert(_) => "bert",
        }
    }

    /// Causal language models predict the next token; encoders do not.
    pub fn is_causal(&self) -> bool {
        !matches!(self.reference, Reference::Bert(_))
    }

    /// Every hook point the model offers.
    pub fn hooks(&self) -> Vec<Hook> {
        all_hooks(self.dims().n_layers)
    }

    /// Parses and checks a hook name against this model.
    pub fn hook(&self, name: &str) -> Result<Hook> {
        Hook::parse_for(name, self.dims().n_layers)
    }

    /// The activation width at a hook.
    pub fn width(&self, hook: Hook) -> usize {
        match hook.point {
            HookPoint::MlpPost => self.dims().d_mlp,
            _ => self.dims().d_model,
        }
    }

    /// Runs right-padded contexts, offering hooks to the sink. ids: [b, t], lengths: real tokens per row
    /// -> logits [b, t, vocab] for causal models when the sink needs no block, else None.
    ///
    /// Hooks run on the fast path, each row attending to its first `lengths[i]` tokens only; the offered
    /// activations are zero at padding positions. Logits come from the reference path.
    pub fn forward(
        &self,
        ids: &Tensor,
        lengths: &[usize],
        sink: &mut dyn HookSink,
    ) -> Result<Option<Tensor>> {
        if sink.last_layer().is_none() {
            return self.forward_reference(ids, lengths, sink);
        }
        let (b, t) = ids.dims2()?;
        if lengths.len() != b || lengths.iter().any(|&l| l > t) {
            return Err(LmError::Invalid(format!(
                "lengths {lengths:?} do not fit a batch of {b} x {t}"
            )));
        }
        let rows: Vec<Vec<u32>> = ids.to_vec2()?;
        let seqs: Vec<&[u32]> = rows.iter().zip(lengths).map(|(r, &l)| &r[..l]).collect();
        let packed = Packed::new(&seqs);
        let mut pad = Padded {
            sink,
            lengths,
            t,
            device: ids.device().clone(),
        };
        self.forward_packed(&packed, &mut pad)?;
        Ok(None)
    }

    /// The plain candle forward (the reference of the fast path): [`Model::forward`]'s contract, except that
    /// padding positions hold whatever the model computes there.
    pub fn forward_reference(
        &self,
        ids: &Tensor,
        lengths: &[usize],
        sink: &mut dyn HookSink,
    ) -> Result<Option<Tensor>> {
        let stop = sink.last_layer();
        match &self.reference {
            Reference::Gpt2(m) => m.forward(ids, sink, stop),
            Reference::Llama(m) => m.forward(ids, sink, stop),
            Reference::Bert(m) => m.forward(ids, lengths, sink).map(|()| None),
        }
    }

    /// [`Model::forward_reference`] under `lin` (see [`Linearize`]): differentiable with respect to the
    /// activations (the weights stay constants; a sink makes a hook's value a `Var`), with the rules' norm
    /// scales, nonlinearities and attention patterns frozen, or replayed. Logits [b, t, vocab] for causal
    /// models when the sink needs no block.
    pub fn forward_linear(
        &self,
        ids: &Tensor,
        lengths: &[usize],
        sink: &mut dyn HookSink,
        lin: &mut Linearize,
    ) -> Result<Option<Tensor>> {
        let stop = sink.last_layer();
        match &self.reference {
            Reference::Gpt2(m) => m.forward_with(ids, sink, stop, lin),
            Reference::Llama(m) => m.forward_with(ids, sink, stop, lin),
            Reference::Bert(m) => m.forward_with(ids, lengths, sink, lin).map(|()| None),
        }
    }

    /// Runs packed sequences on the fast path, offering each hook's rows (packed order) to the sink and
    /// stopping after the last block it needs.
    pub fn forward_packed(&self, seqs: &Packed, sink: &mut dyn RowSink) -> Result<()> {
        match &self.fast {
            Fast::Gpt2(m) => m.forward(seqs, sink),
            Fast::Llama(m) => m.forward(seqs, sink),
            Fast::Bert(m) => m.forward(seqs, sink),
        }
    }

    /// Next-token logits [tokens, vocab] of packed sequences on the fast path, after every block (whatever
    /// the sink's last layer), the sink offered every hook it wants and allowed to rewrite it (a splice).
    /// Causal models only.
    pub fn logits_packed(&self, seqs: &Packed, sink: &mut dyn RowSink) -> Result<Vec<f32>> {
        match &self.fast {
            Fast::Gpt2(m) => m.logits(seqs, sink),
            Fast::Llama(m) => m.logits(seqs, sink),
            Fast::Bert(_) => Err(self.not_causal()),
        }
    }

    /// The reference of [`Model::logits_packed`]: the plain candle forward over right-padded ids [b, t]
    /// -> logits [b, t, vocab], every block run, the sink allowed to rewrite what it wants.
    pub fn logits_reference(&self, ids: &Tensor, sink: &mut dyn HookSink) -> Result<Tensor> {
        let logits = match &self.reference {
            Reference::Gpt2(m) => m.forward(ids, sink, None)?,
            Reference::Llama(m) => m.forward(ids, sink, None)?,
            Reference::Bert(_) => return Err(self.not_causal()),
        };
        logits.ok_or_else(|| LmError::Invalid("the full forward pass returned no logits".into()))
    }

    fn not_causal(&self) -> LmError {
        LmError::Invalid(format!(
            "{} is an encoder, not a causal language model: it has no next-token logits",
            self.arch()
        ))
    }

    /// The final norm's weight [d_model] and the unembedding [vocab, d_model]; None for encoders.
    pub fn head(&self) -> Option<(&Tensor, &Tensor)> {
        match &self.reference {
            Reference::Gpt2(m) => Some(m.head()),
            Reference::Llama(m) => Some(m.head()),
            Reference::Bert(_) => None,
        }
    }
}
