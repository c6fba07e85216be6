//! The supported architectures (one file each) behind one `Model` that loads from resolved files and runs
//! a forward pass offering hook points to a sink.

pub mod bert;
pub mod gguf;
pub mod gpt2;
pub mod llama;
pub mod llama_config;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::de::DeserializeOwned;

use crate::error::{HarvestError, Result};
use crate::files::ModelFiles;
use crate::hooks::{all_hooks, Hook, HookPoint, HookSink};
use crate::hub::ResolvedModel;

/// A loaded model of one of the supported architectures.
pub enum Model {
    /// GPT-2 (safetensors).
    Gpt2(gpt2::Gpt2),
    /// Llama family (safetensors or GGUF).
    Llama(llama::Llama),
    /// BERT encoder.
    Bert(bert::Bert),
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
    let text = std::fs::read_to_string(path).map_err(|source| HarvestError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| HarvestError::BadConfig {
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
        .ok_or_else(|| HarvestError::BadConfig {
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
    f(&raw).map_err(|message| HarvestError::BadConfig {
        path: config.to_path_buf(),
        message,
    })
}

fn bad_weights(paths: &[PathBuf], err: HarvestError) -> HarvestError {
    match err {
        HarvestError::Candle(e) => HarvestError::BadWeights {
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
        match &model.files {
            ModelFiles::Gguf { file } => {
                let g = gguf::GgufFile::open(file)?;
                let cfg = g.llama_config()?;
                let tensors = g
                    .hf_tensors(device)
                    .map_err(|e| bad_weights(std::slice::from_ref(file), e))?;
                let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
                Ok(Model::Llama(
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
                        return Err(HarvestError::MissingFile {
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
                        gpt2::Gpt2::load(load_vb()?, &cfg).map(Model::Gpt2)
                    }
                    "llama" | "mistral" | "qwen2" => {
                        let cfg = resolve(config, llama::RawLlamaConfig::resolve)?;
                        llama::Llama::load(load_vb()?, &cfg).map(Model::Llama)
                    }
                    "bert" => {
                        let cfg = resolve(config, bert::RawBertConfig::resolve)?;
                        bert::Bert::load(load_vb()?, &cfg).map(Model::Bert)
                    }
                    other => {
                        return Err(HarvestError::UnsupportedArchitecture {
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
        match self {
            Model::Gpt2(m) => {
                let c = m.config();
                ModelDims {
                    n_layers: c.n_layers,
                    d_model: c.d_model,
                    d_mlp: c.d_mlp,
                    vocab_size: c.vocab_size,
                    max_ctx: Some(c.n_ctx),
                }
            }
            Model::Llama(m) => {
                let c = m.config();
                ModelDims {
                    n_layers: c.n_layers,
                    d_model: c.d_model,
                    d_mlp: c.d_mlp,
                    vocab_size: c.vocab_size,
                    max_ctx: None,
                }
            }
            Model::Bert(m) => {
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

    /// A short architecture name.
    pub fn arch(&self) -> &'static str {
        match self {
            Model::Gpt2(_) => "gpt2",
            Model::Llama(_) => "llama",
            Model::Bert(_) => "bert",
        }
    }

    /// Causal language models predict the next token; encoders do not.
    pub fn is_causal(&self) -> bool {
        !matches!(self, Model::Bert(_))
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
    pub fn forward(
        &self,
        ids: &Tensor,
        lengths: &[usize],
        sink: &mut dyn HookSink,
    ) -> Result<Option<Tensor>> {
        match self {
            Model::Gpt2(m) => m.forward(ids, sink),
            Model::Llama(m) => m.forward(ids, sink),
            Model::Bert(m) => m.forward(ids, lengths, sink).map(|()| None),
        }
    }

    /// The final norm's weight [d_model] and the unembedding [vocab, d_model]; None for encoders.
    pub fn head(&self) -> Option<(&Tensor, &Tensor)> {
        match self {
            Model::Gpt2(m) => Some(m.head()),
            Model::Llama(m) => Some(m.head()),
            Model::Bert(_) => None,
        }
    }
}
