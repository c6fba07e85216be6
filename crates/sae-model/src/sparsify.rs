//! The EleutherAI sparsify folder format: `cfg.json` (num_latents / expansion_factor, k, d_in,
//! activation, transcode, skip_connection) + `sae.safetensors` (`encoder.weight` [d_sae, d_in],
//! `encoder.bias`, `W_dec` [d_sae, d_in], `b_dec` [d_in], `W_skip` [d_in, d_in] with a skip
//! connection). sparsify encodes with ReLU then TopK, which is our [`Activation::TopK`] (or its
//! `groupmax`, [`Activation::GroupMax`]); a
//! transcoder (`transcode`) does not subtract `b_dec` from its input and predicts another hook
//! of the same width; a skip connection adds `x W_skip^T` to the output.
//!
//! [`save`] writes that layout for what SAELens has no class for (TopK transcoders, TopK with a
//! skip connection, groupmax), as `SparseCoder.save_to_disk` does, plus our `metadata` and
//! `sae_format_version` in `cfg.json` (sparsify's loader drops keys it does not know) and
//! `sparsity.safetensors` beside it.

use std::path::Path;

use serde_json::Value;

use candle_core::Tensor;
use serde::Serialize;

use crate::json::CfgObject;
use crate::saelens::{write_atomic, write_cfg, write_sparsity, CFG_FILE, FORMAT_VERSION};
use crate::weights::{serialize_f32, WeightFile};
use crate::{Activation, InputNorm, Reshape, Sae, SaeConfig, SaeError, SaeMetadata};

/// sparsify weights file name.
pub const SPARSIFY_WEIGHTS_FILE: &str = "sae.safetensors";

/// Keys of a sparsify config that [`load`] interprets; the rest go to `metadata.extra`.
const KNOWN_KEYS: &[&str] = &[
    "d_in",
    "num_latents",
    "expansion_factor",
    "k",
    "activation",
    "transcode",
    "skip_connection",
    "metadata",
    "sae_format_version",
];

/// Keys of a sparsify config that only its trainer reads (kept in `metadata.extra` of a folder
/// sparsify wrote, left out of one we wrote: our `metadata` says what it is).
const TRAINING_KEYS: &[&str] = &["normalize_decoder", "multi_topk"];

/// d_in and d_sae: from the config (sparsify's save_to_disk writes d_in; older folders may
/// lack it) or the encoder's shape.
fn widths(obj: &CfgObject, weights: &WeightFile) -> Result<(usize, usize), SaeError> {
    let enc_shape = weights.shape("encoder.weight")?;
    let d_in = match obj.opt_usize("d_in")? {
        Some(d) => d,
        None => *enc_shape
            .get(1)
            .ok_or_else(|| obj.bad("no d_in and encoder.weight is not 2-D"))?,
    };
    let d_sae = match obj.opt_usize("num_latents")? {
        Some(n) if n > 0 => n,
        _ => match obj.get("expansion_factor").and_then(Value::as_f64) {
            Some(f) if f > 0.0 => (d_in as f64 * f).round() as usize,
            _ => *enc_shape.first().unwrap_or(&0),
        },
    };
    Ok((d_in, d_sae))
}

/// Loads a sparsify folder.
pub fn load(dir: &Path) -> Result<Sae, SaeError> {
    let obj = CfgObject::read(&dir.join(CFG_FILE))?;
    let weights = WeightFile::read(&dir.join(SPARSIFY_WEIGHTS_FILE))?;
    let (d_in, d_sae) = widths(&obj, &weights)?;
    let k = obj.usize("k")?;
    let activation = match obj.opt_str("activation")?.as_deref() {
        None | Some("topk") => Activation::TopK { k },
        Some("groupmax") => Activation::GroupMax { k },
        Some(act) => {
            return Err(SaeError::UnknownArchitecture {
                path: obj.path.clone(),
                name: format!("sparsify activation {act:?} (supported: topk, groupmax)"),
            })
        }
    };
    let transcode = obj.opt_bool("transcode")?.unwrap_or(false);
    let skip = obj.opt_bool("skip_connection")?.unwrap_or(false) || weights.has("W_skip");
    let w_enc = weights
        .tensor("encoder.weight", &[d_sae, d_in])?
        .t()?
        .contiguous()?;
    let b_enc = weights.tensor("encoder.bias", &[d_sae])?;
    let w_dec = weights.tensor("W_dec", &[d_sae, d_in])?;
    let b_dec = weights.tensor("b_dec", &[d_in])?;
    let w_skip = match skip {
        true => Some(weights.tensor("W_skip", &[d_in, d_in])?.t()?.contiguous()?),
        false => None,
    };
    let mut cfg = SaeConfig::new(d_in, d_sae, activation);
    // sparsify subtracts b_dec from the input unless the coder is a transcoder, whose output
    // (of the input's width) belongs to the next hook.
    cfg.apply_b_dec_to_input = !transcode;
    cfg.d_out = transcode.then_some(d_in);
    cfg.metadata = metadata(&obj)?;
    Sae::with_parts(cfg, w_enc, b_enc, w_dec, b_dec, None, None, w_skip)
}

/// Our `metadata` where the folder is ours; else sparsify's keys we do not interpret, with
/// `format` = "sparsify".
fn metadata(obj: &CfgObject) -> Result<SaeMetadata, SaeError> {
    if let Some(m) = obj.get("metadata").filter(|m| m.is_object()) {
        return serde_json::from_value(m.clone()).map_err(|e| obj.bad(format!("metadata: {e}")));
    }
    let extra = obj
        .map
        .iter()
        .filter(|(key, _)| !KNOWN_KEYS.contains(&key.as_str()))
        .map(|(key, v)| (key.clone(), v.clone()))
        .chain([("format".to_string(), Value::String("sparsify".into()))])
        .collect();
    Ok(SaeMetadata {
        extra,
        ..SaeMetadata::default()
    })
}

/// Why sparsify cannot hold `sae`, or None when it can: a TopK (or groupmax) coder without a
/// threshold, gate, input normalization or reshape; an autoencoder subtracts b_dec from its input
/// and a transcoder predicts a hook of its input's width (sparsify's W_dec is [d_sae, d_in]).
pub fn unsupported(sae: &Sae) -> Option<String> {
    let c = &sae.cfg;
    let (d_in, d_out) = (c.d_in, c.out_width());
    if activation_of(c.activation).is_none() {
        return Some(format!("sparsify has no {} coder", sae.kind()));
    }
    if sae.threshold.is_some() || sae.gate.is_some() {
        return Some("sparsify coders have no threshold or gate".into());
    }
    if c.normalize_activations != InputNorm::None || c.reshape_activations != Reshape::None {
        return Some("sparsify coders normalize and reshape nothing".into());
    }
    match (c.is_transcoder(), c.apply_b_dec_to_input) {
        (true, _) if d_out != d_in => Some(format!(
            "sparsify's transcoders predict a hook of the input's width, not d_out {d_out} from \
             d_in {d_in}"
        )),
        (true, true) => Some("sparsify's transcoders do not subtract b_dec".into()),
        (false, false) => Some("sparsify's autoencoders subtract b_dec from the input".into()),
        _ => None,
    }
}

/// sparsify's `activation` name and k for `a`, where sparsify has it.
fn activation_of(a: Activation) -> Option<(&'static str, usize)> {
    match a {
        Activation::TopK { k } => Some(("topk", k)),
        Activation::GroupMax { k } => Some(("groupmax", k)),
        _ => None,
    }
}

/// `cfg.json` as we write it: sparsify's `SparseCoderConfig` fields and `d_in`, then ours.
#[derive(Serialize)]
struct CfgOut<'a> {
    activation: &'static str,
    expansion_factor: usize,
    /// A training setting of sparsify's: our folded decoder rows are not unit-norm.
    normalize_decoder: bool,
    num_latents: usize,
    k: usize,
    multi_topk: bool,
    skip_connection: bool,
    transcode: bool,
    d_in: usize,
    sae_format_version: u32,
    metadata: &'a SaeMetadata,
}

/// Saves `sae` as a sparsify folder in `dir` (created if missing): the weights, `log10_density`
/// in `sparsity.safetensors` when given, then `cfg.json`, each file atomically. What sparsify
/// cannot hold (see [`unsupported`]) is refused.
pub fn save(sae: &Sae, dir: &Path, log10_density: Option<&[f32]>) -> Result<(), SaeError> {
    sae.validate()?;
    if let Some(why) = unsupported(sae) {
        return Err(SaeError::Invalid(format!(
            "sparsify cannot represent a {}: {why}",
            sae.kind()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|err| SaeError::Io {
        path: dir.to_path_buf(),
        err,
    })?;
    let c = &sae.cfg;
    if let Some(density) = log10_density {
        write_sparsity(dir, density, c.d_sae)?;
    }
    let enc_t = sae.w_enc.t()?.contiguous()?;
    let mut tensors: Vec<(&str, Tensor)> = vec![
        ("encoder.weight", enc_t),
        ("encoder.bias", sae.b_enc.clone()),
        ("W_dec", sae.w_dec.clone()),
        ("b_dec", sae.b_dec.clone()),
    ];
    if let Some(w) = &sae.w_skip {
        // sparsify adds x W_skip^T: its W_skip is [d_out, d_in].
        tensors.push(("W_skip", w.t()?.contiguous()?));
    }
    let path = dir.join(SPARSIFY_WEIGHTS_FILE);
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    write_atomic(&path, &serialize_f32(&refs, &path)?)?;
    let (activation, k) = activation_of(c.activation).unwrap_or(("topk", 0));
    let mut metadata = c.metadata.clone();
    for key in TRAINING_KEYS.iter().chain(&["format"]) {
        metadata.extra.remove(*key);
    }
    let cfg = CfgOut {
        activation,
        expansion_factor: (c.d_sae / c.d_in).max(1),
        normalize_decoder: false,
        num_latents: c.d_sae,
        k,
        multi_topk: false,
        skip_connection: sae.w_skip.is_some(),
        transcode: c.is_transcoder(),
        d_in: c.d_in,
        sae_format_version: FORMAT_VERSION,
        metadata: &metadata,
    };
    write_cfg(dir, &cfg)
}
