//! The SAELens folder format: `cfg.json` + `sae_weights.safetensors` (+ `sparsity.safetensors`).
//! We write the SAELens >= 6 layout; we read it and the pre-6.0 flat `cfg.json`.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::config::normalization_supported;
use crate::json::CfgObject;
use crate::weights::{serialize_f32, WeightFile};
use crate::{Activation, Sae, SaeConfig, SaeError, SaeMetadata};

/// Config file name (SAELens and sparsify).
pub const CFG_FILE: &str = "cfg.json";
/// SAELens weights file name.
pub const WEIGHTS_FILE: &str = "sae_weights.safetensors";
/// SAELens feature-density file name (`sparsity` = log10 firing frequency [d_sae]).
pub const SPARSITY_FILE: &str = "sparsity.safetensors";

/// `cfg.json` as we write it: the SAELens >= 6 layout.
#[derive(Serialize)]
struct CfgOut<'a> {
    architecture: &'static str,
    d_in: usize,
    d_sae: usize,
    dtype: &'static str,
    device: &'static str,
    apply_b_dec_to_input: bool,
    normalize_activations: &'a str,
    reshape_activations: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    k: Option<usize>,
    metadata: &'a SaeMetadata,
}

/// Writes `bytes` to `path` atomically, as a typed [`SaeError`].
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SaeError> {
    sae_store::atomic_write(path, bytes).map_err(|e| match e {
        sae_store::StoreError::Io { path, err } => SaeError::Io { path, err },
        other => SaeError::Store(other),
    })
}

/// Saves `sae` as a SAELens folder in `dir` (created if missing). Each file appears atomically;
/// the weights are written before `cfg.json`. `log10_density` [d_sae], when given, is written
/// to `sparsity.safetensors`.
pub fn save(sae: &Sae, dir: &Path, log10_density: Option<&[f32]>) -> Result<(), SaeError> {
    sae.validate()?;
    std::fs::create_dir_all(dir).map_err(|err| SaeError::Io {
        path: dir.to_path_buf(),
        err,
    })?;
    let d_sae = sae.cfg.d_sae;
    if let Some(density) = log10_density {
        if density.len() != d_sae {
            return Err(SaeError::Invalid(format!(
                "log10 density has {} entries, d_sae is {d_sae}",
                density.len()
            )));
        }
        let path = dir.join(SPARSITY_FILE);
        let t = candle_core::Tensor::from_slice(density, d_sae, &candle_core::Device::Cpu)?;
        write_atomic(&path, &serialize_f32(&[("sparsity", &t)], &path)?)?;
    }
    let path = dir.join(WEIGHTS_FILE);
    let mut tensors = vec![
        ("W_enc", &sae.w_enc),
        ("b_enc", &sae.b_enc),
        ("W_dec", &sae.w_dec),
        ("b_dec", &sae.b_dec),
    ];
    if let Some(t) = &sae.threshold {
        tensors.push(("threshold", t));
    }
    write_atomic(&path, &serialize_f32(&tensors, &path)?)?;
    let cfg = CfgOut {
        architecture: sae.cfg.activation.architecture(),
        d_in: sae.cfg.d_in,
        d_sae,
        dtype: "float32",
        device: "cpu",
        apply_b_dec_to_input: sae.cfg.apply_b_dec_to_input,
        normalize_activations: &sae.cfg.normalize_activations,
        reshape_activations: "none",
        k: match sae.cfg.activation {
            Activation::TopK { k } => Some(k),
            _ => None,
        },
        metadata: &sae.cfg.metadata,
    };
    let path = dir.join(CFG_FILE);
    let text = serde_json::to_string_pretty(&cfg).map_err(|e| SaeError::BadConfig {
        path: path.clone(),
        msg: e.to_string(),
    })?;
    write_atomic(&path, text.as_bytes())
}

/// Loads a SAELens folder (ours, SAELens >= 6, or a pre-6.0 flat `cfg.json`).
pub fn load(dir: &Path) -> Result<Sae, SaeError> {
    let obj = CfgObject::read(&dir.join(CFG_FILE))?;
    let cfg = if obj.get("metadata").is_some_and(Value::is_object) {
        parse_modern(&obj)?
    } else {
        parse_flat(&obj)?
    };
    let weights = WeightFile::read(&dir.join(WEIGHTS_FILE))?;
    let (d_in, d_sae) = (cfg.d_in, cfg.d_sae);
    let w_enc = weights.tensor("W_enc", &[d_in, d_sae])?;
    let b_enc = weights.tensor("b_enc", &[d_sae])?;
    let w_dec = weights.tensor("W_dec", &[d_sae, d_in])?;
    let b_dec = weights.tensor("b_dec", &[d_in])?;
    let threshold = match cfg.activation {
        Activation::JumpRelu if weights.has("threshold") => {
            Some(weights.tensor("threshold", &[d_sae])?)
        }
        Activation::JumpRelu if weights.has("log_threshold") => {
            Some(weights.tensor("log_threshold", &[d_sae])?.exp()?)
        }
        Activation::JumpRelu => {
            return Err(SaeError::MissingTensor {
                path: weights.path().to_path_buf(),
                name: "threshold".into(),
            })
        }
        _ => None,
    };
    Sae::new(cfg, w_enc, b_enc, w_dec, b_dec, threshold)
}

/// Reads `sparsity.safetensors` (log10 density [d_sae]) from `dir`, if present.
pub fn load_sparsity(dir: &Path, d_sae: usize) -> Result<Option<Vec<f32>>, SaeError> {
    let path = dir.join(SPARSITY_FILE);
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(WeightFile::read(&path)?.f32("sparsity", &[d_sae])?))
}

/// `normalize_activations`: a string, or (very old configs) false / null meaning "none".
fn normalization(obj: &CfgObject) -> Result<String, SaeError> {
    let name = match obj.get("normalize_activations") {
        None | Some(Value::Bool(false)) => "none".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => return Err(obj.bad(format!("normalize_activations: unexpected value {v}"))),
    };
    if !normalization_supported(&name) {
        return Err(SaeError::UnsupportedNormalization {
            path: obj.path.clone(),
            name,
        });
    }
    Ok(name)
}

fn unknown_arch(obj: &CfgObject, name: impl Into<String>) -> SaeError {
    SaeError::UnknownArchitecture {
        path: obj.path.clone(),
        name: name.into(),
    }
}

/// SAELens >= 6: `architecture` + nested `metadata`.
fn parse_modern(obj: &CfgObject) -> Result<SaeConfig, SaeError> {
    let arch = obj
        .opt_str("architecture")?
        .unwrap_or_else(|| "standard".into());
    let activation = match arch.as_str() {
        "standard" => Activation::Relu,
        "jumprelu" => Activation::JumpRelu,
        "topk" => {
            if obj.opt_bool("rescale_acts_by_decoder_norm")? == Some(true) {
                return Err(unknown_arch(obj, "topk with rescale_acts_by_decoder_norm"));
            }
            Activation::TopK { k: obj.usize("k")? }
        }
        other => return Err(unknown_arch(obj, other)),
    };
    let metadata: SaeMetadata = match obj.get("metadata") {
        Some(v) => {
            serde_json::from_value(v.clone()).map_err(|e| obj.bad(format!("metadata: {e}")))?
        }
        None => SaeMetadata::default(),
    };
    Ok(SaeConfig {
        d_in: obj.usize("d_in")?,
        d_sae: obj.usize("d_sae")?,
        activation,
        apply_b_dec_to_input: obj.opt_bool("apply_b_dec_to_input")?.unwrap_or(true),
        normalize_activations: normalization(obj)?,
        dtype: "float32".into(),
        metadata,
    })
}

/// Keys of a flat config that [`parse_flat`] interprets; the rest go to `metadata.extra`.
const FLAT_KEYS: &[&str] = &[
    "architecture",
    "activation_fn_str",
    "activation_fn_kwargs",
    "k",
    "d_in",
    "d_sae",
    "expansion_factor",
    "apply_b_dec_to_input",
    "normalize_activations",
    "dtype",
    "device",
    "model_name",
    "hook_name",
    "hook_point",
    "context_size",
    "prepend_bos",
    "dataset_path",
];

/// k of a flat config: `k`, else `activation_fn_kwargs.k`.
fn flat_k(obj: &CfgObject) -> Result<usize, SaeError> {
    if let Some(k) = obj.opt_usize("k")? {
        return Ok(k);
    }
    obj.get("activation_fn_kwargs")
        .and_then(|kw| kw.get("k"))
        .and_then(Value::as_u64)
        .map(|k| k as usize)
        .ok_or_else(|| obj.bad("topk SAE without k (activation_fn_kwargs.k)"))
}

/// SAELens < 6: a flat object with `activation_fn_str`, `hook_name` / `hook_point`, ...
fn parse_flat(obj: &CfgObject) -> Result<SaeConfig, SaeError> {
    let arch = obj
        .opt_str("architecture")?
        .unwrap_or_else(|| "standard".into());
    let act_fn = obj
        .opt_str("activation_fn_str")?
        .unwrap_or_else(|| "relu".into());
    let activation = match (arch.as_str(), act_fn.as_str()) {
        ("standard", "relu") => Activation::Relu,
        ("standard", "topk") | ("topk", _) => Activation::TopK { k: flat_k(obj)? },
        ("jumprelu", _) => Activation::JumpRelu,
        ("standard", other) => {
            return Err(unknown_arch(
                obj,
                format!("standard with activation_fn_str {other:?}"),
            ))
        }
        (other, _) => return Err(unknown_arch(obj, other)),
    };
    let d_in = obj.usize("d_in")?;
    let d_sae = match obj.opt_usize("d_sae")? {
        Some(d) => d,
        None => match obj.get("expansion_factor").and_then(Value::as_f64) {
            Some(f) if f > 0.0 => (d_in as f64 * f).round() as usize,
            _ => return Err(obj.bad("missing field d_sae (and no expansion_factor)")),
        },
    };
    let extra = obj
        .map
        .iter()
        .filter(|(key, v)| !FLAT_KEYS.contains(&key.as_str()) && !v.is_null())
        .map(|(key, v)| (key.clone(), v.clone()))
        .collect();
    let metadata = SaeMetadata {
        model_name: obj.opt_str("model_name")?,
        hook_name: match obj.opt_str("hook_name")? {
            Some(h) => Some(h),
            None => obj.opt_str("hook_point")?,
        },
        context_size: obj.opt_usize("context_size")?,
        prepend_bos: obj.opt_bool("prepend_bos")?,
        dataset_path: obj.opt_str("dataset_path")?,
        trained_arch: None,
        extra,
    };
    Ok(SaeConfig {
        d_in,
        d_sae,
        activation,
        apply_b_dec_to_input: obj.opt_bool("apply_b_dec_to_input")?.unwrap_or(true),
        normalize_activations: normalization(obj)?,
        dtype: "float32".into(),
        metadata,
    })
}
