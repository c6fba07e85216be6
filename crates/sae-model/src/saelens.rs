//! The SAELens folder format: `cfg.json` + `sae_weights.safetensors` (+ `sparsity.safetensors`).
//! We write the SAELens >= 6 layout; we read it and the pre-6.0 flat `cfg.json`.

use std::path::Path;

use candle_core::Tensor;
use serde::Serialize;

use crate::json::CfgObject;
use crate::saelens_cfg::{lens_architecture, parse, unknown_arch, LensCfg};
use crate::weights::{serialize_f32, WeightFile};
use crate::{scaler, Activation, Gate, InputNorm, Sae, SaeError, SaeMetadata};

pub use crate::saelens_cfg::SUPPORTED_ARCHITECTURES;

/// Config file name (SAELens and sparsify).
pub const CFG_FILE: &str = "cfg.json";
/// SAELens weights file name.
pub const WEIGHTS_FILE: &str = "sae_weights.safetensors";
/// SAELens feature-density file name (`sparsity` = log10 firing frequency [d_sae]).
pub const SPARSITY_FILE: &str = "sparsity.safetensors";

/// Version of the folder layout we write, recorded in `cfg.json` as `sae_format_version`
/// (SAELens ignores the key). 3: `metadata.sae_lens_version` marks the SAELens 6 layout (see
/// [`SAELENS_LAYOUT_VERSION`]); 2: transcoders (`d_out`, `W_skip`), gated SAEs, the input
/// normalization and `reshape_activations` as they are; 1 (unrecorded): standard / topk / jumprelu.
pub const FORMAT_VERSION: u32 = 3;

/// `metadata.sae_lens_version` of a folder we write when it carries none: SAELens 6 takes a `cfg.json`
/// without it for the pre-6.0 flat layout and rebuilds the metadata from top-level keys, dropping
/// our `hook_name`, `model_name` and a transcoder's `hook_name_out`. "6.0.0" names the first SAELens
/// version of the layout we write (an SAE loaded from SAELens keeps its own version).
pub const SAELENS_LAYOUT_VERSION: &str = "6.0.0";

/// Key of a transcoder's output hook: in `metadata` (SAELens 6 reads `cfg.metadata.hook_name_out`;
/// some 6.x versions wrote it at the top level of `cfg.json`, which the loader also reads).
pub const HOOK_NAME_OUT: &str = "hook_name_out";

/// `cfg.json` as we write it: the SAELens >= 6 layout.
#[derive(Serialize)]
struct CfgOut<'a> {
    architecture: &'static str,
    d_in: usize,
    d_sae: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    d_out: Option<usize>,
    dtype: &'static str,
    device: &'static str,
    apply_b_dec_to_input: bool,
    normalize_activations: &'static str,
    reshape_activations: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    k: Option<usize>,
    sae_format_version: u32,
    metadata: &'a SaeMetadata,
}

/// Writes `bytes` to `path` atomically, as a typed [`SaeError`].
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SaeError> {
    sae_store::atomic_write(path, bytes).map_err(|e| match e {
        sae_store::StoreError::Io { path, err } => SaeError::Io { path, err },
        other => SaeError::Store(other),
    })
}

/// Writes `cfg` as pretty JSON to `dir/cfg.json`, atomically (SAELens' and sparsify's cfg.json alike).
pub(crate) fn write_cfg(dir: &Path, cfg: &impl serde::Serialize) -> Result<(), SaeError> {
    let path = dir.join(CFG_FILE);
    let text = serde_json::to_string_pretty(cfg).map_err(|e| SaeError::BadConfig {
        path: path.clone(),
        msg: e.to_string(),
    })?;
    write_atomic(&path, text.as_bytes())
}

/// The weights of `sae` under their SAELens names (`W_skip` back in SAELens' [d_out, d_in]).
fn named_tensors(sae: &Sae) -> Result<Vec<(&'static str, Tensor)>, SaeError> {
    let gated = sae.gate.is_some();
    let mut tensors = vec![
        ("W_enc", sae.w_enc.clone()),
        (if gated { "b_gate" } else { "b_enc" }, sae.b_enc.clone()),
        ("W_dec", sae.w_dec.clone()),
        ("b_dec", sae.b_dec.clone()),
    ];
    if let Some(t) = &sae.threshold {
        tensors.push(("threshold", t.clone()));
    }
    if let Some(g) = &sae.gate {
        tensors.push(("r_mag", g.r_mag.clone()));
        tensors.push(("b_mag", g.b_mag.clone()));
    }
    if let Some(w) = &sae.w_skip {
        tensors.push(("W_skip", w.t()?.contiguous()?));
    }
    Ok(tensors)
}

/// Writes `density` (log10 firing frequency, [d_sae]) to `dir`'s `sparsity.safetensors`.
pub(crate) fn write_sparsity(dir: &Path, density: &[f32], d_sae: usize) -> Result<(), SaeError> {
    if density.len() != d_sae {
        return Err(SaeError::Invalid(format!(
            "log10 density has {} entries, d_sae is {d_sae}",
            density.len()
        )));
    }
    let path = dir.join(SPARSITY_FILE);
    let t = Tensor::from_slice(density, d_sae, &candle_core::Device::Cpu)?;
    write_atomic(&path, &serialize_f32(&[("sparsity", &t)], &path)?)
}

/// Saves `sae` as a SAELens folder in `dir` (created if missing). Each file appears atomically;
/// the weights are written before `cfg.json`. `log10_density` [d_sae], when given, is written
/// to `sparsity.safetensors`. TopK and gated transcoders, which SAELens has no class for, are
/// refused ([`Sae::save`] writes a TopK transcoder in sparsify's layout instead).
pub fn save(sae: &Sae, dir: &Path, log10_density: Option<&[f32]>) -> Result<(), SaeError> {
    sae.validate()?;
    let architecture = lens_architecture(&sae.cfg, sae.w_skip.is_some())
        .ok_or_else(|| SaeError::Invalid(format!("SAELens cannot represent a {}", sae.kind())))?;
    std::fs::create_dir_all(dir).map_err(|err| SaeError::Io {
        path: dir.to_path_buf(),
        err,
    })?;
    let d_sae = sae.cfg.d_sae;
    if let Some(density) = log10_density {
        write_sparsity(dir, density, d_sae)?;
    }
    let path = dir.join(WEIGHTS_FILE);
    let tensors = named_tensors(sae)?;
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    write_atomic(&path, &serialize_f32(&refs, &path)?)?;
    let mut metadata = sae.cfg.metadata.clone();
    metadata
        .extra
        .entry("sae_lens_version".into())
        .or_insert_with(|| SAELENS_LAYOUT_VERSION.into());
    let cfg = CfgOut {
        architecture,
        d_in: sae.cfg.d_in,
        d_sae,
        d_out: sae.cfg.d_out,
        dtype: "float32",
        device: "cpu",
        apply_b_dec_to_input: sae.cfg.apply_b_dec_to_input,
        normalize_activations: sae.cfg.normalize_activations.name(),
        reshape_activations: sae.cfg.reshape_activations.name(),
        k: match sae.cfg.activation {
            Activation::TopK { k } => Some(k),
            _ => None,
        },
        sae_format_version: FORMAT_VERSION,
        metadata: &metadata,
    };
    write_cfg(dir, &cfg)
}

/// Loads a SAELens folder (ours, SAELens >= 6, or a pre-6.0 flat `cfg.json`), of any
/// architecture in [`SUPPORTED_ARCHITECTURES`].
pub fn load(dir: &Path) -> Result<Sae, SaeError> {
    let obj = CfgObject::read(&dir.join(CFG_FILE))?;
    let LensCfg {
        mut cfg,
        rescale_by_decoder_norm,
        skip,
    } = parse(&obj)?;
    let weights = WeightFile::read(&dir.join(WEIGHTS_FILE))?;
    if weights.has("scaling_factor") {
        let s = weights.f32("scaling_factor", &[cfg.d_sae])?;
        if s.iter().any(|v| *v != 1.0) {
            return Err(unknown_arch(
                &obj,
                "finetuning_scaling_factor (a scaling_factor that is not all ones)",
            ));
        }
    }
    let (d_in, d_sae, d_out) = (cfg.d_in, cfg.d_sae, cfg.out_width());
    let mut w_enc = weights.tensor("W_enc", &[d_in, d_sae])?;
    let gated = cfg.activation == Activation::Gated;
    let mut b_enc = weights.tensor(if gated { "b_gate" } else { "b_enc" }, &[d_sae])?;
    let mut w_dec = weights.tensor("W_dec", &[d_sae, d_out])?;
    let mut b_dec = weights.tensor("b_dec", &[d_out])?;
    let threshold = match cfg.activation {
        Activation::JumpRelu if weights.has("threshold") => {
            Some(weights.tensor("threshold", &[d_sae])?)
        }
        Activation::JumpRelu if weights.has("log_threshold") => {
            Some(weights.tensor("log_threshold", &[d_sae])?.exp()?)
        }
        Activation::JumpRelu => return Err(weights.missing("threshold")),
        _ => None,
    };
    if rescale_by_decoder_norm {
        // f = topk(z * |W_dec_j|), out = (f / |W_dec_j|) W_dec + b_dec: the same as a plain TopK
        // SAE with the norms folded into the encoder (SAELens' own fold for this case).
        let norms = w_dec.sqr()?.sum_keepdim(1)?.sqrt()?;
        w_dec = w_dec.broadcast_div(&norms)?;
        let norms = norms.flatten_all()?;
        w_enc = w_enc.broadcast_mul(&norms)?;
        b_enc = (b_enc * &norms)?;
        cfg.metadata.extra.insert(
            "rescale_acts_by_decoder_norm".into(),
            "folded at load".into(),
        );
    }
    if let Some(s) = scaler::folded_factor(dir, &cfg)? {
        // Inputs were multiplied by s in training: fold it as SAELens does when it saves.
        w_enc = (w_enc * s)?;
        w_dec = (w_dec / s)?;
        b_dec = (b_dec / s)?;
        cfg.normalize_activations = InputNorm::None;
        cfg.metadata
            .extra
            .insert("folded_scaling_factor".into(), s.into());
    }
    let gate = match gated {
        true => Some(Gate::new(
            &w_enc,
            weights.tensor("r_mag", &[d_sae])?,
            weights.tensor("b_mag", &[d_sae])?,
        )?),
        false => None,
    };
    let w_skip = match skip {
        true => Some(
            weights
                .tensor("W_skip", &[d_out, d_in])?
                .t()?
                .contiguous()?,
        ),
        false => None,
    };
    Sae::with_parts(cfg, w_enc, b_enc, w_dec, b_dec, threshold, gate, w_skip)
}

/// Reads `sparsity.safetensors` (log10 density [d_sae]) from `dir`, if present.
pub fn load_sparsity(dir: &Path, d_sae: usize) -> Result<Option<Vec<f32>>, SaeError> {
    let path = dir.join(SPARSITY_FILE);
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(WeightFile::read(&path)?.f32("sparsity", &[d_sae])?))
}
