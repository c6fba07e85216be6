//! The EleutherAI sparsify folder format: `cfg.json` (num_latents / expansion_factor, k, d_in,
//! activation, transcode, skip_connection) + `sae.safetensors` (`encoder.weight` [d_sae, d_in],
//! `encoder.bias`, `W_dec` [d_sae, d_in], `b_dec` [d_in], `W_skip` [d_in, d_in] with a skip
//! connection). sparsify encodes with ReLU then TopK, which is our [`Activation::TopK`] (or its
//! `groupmax`, [`Activation::GroupMax`]); a
//! transcoder (`transcode`) does not subtract `b_dec` from its input and predicts another hook
//! of the same width; a skip connection adds `x W_skip^T` to the output.

use std::path::Path;

use serde_json::Value;

use crate::json::CfgObject;
use crate::saelens::CFG_FILE;
use crate::weights::WeightFile;
use crate::{Activation, Sae, SaeConfig, SaeError, SaeMetadata};

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
];

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
    let mut extra: std::collections::BTreeMap<String, Value> = obj
        .map
        .iter()
        .filter(|(key, _)| !KNOWN_KEYS.contains(&key.as_str()))
        .map(|(key, v)| (key.clone(), v.clone()))
        .collect();
    extra.insert("format".into(), Value::String("sparsify".into()));
    let mut cfg = SaeConfig::new(d_in, d_sae, activation);
    // sparsify subtracts b_dec from the input unless the coder is a transcoder, whose output
    // (of the input's width) belongs to the next hook.
    cfg.apply_b_dec_to_input = !transcode;
    cfg.d_out = transcode.then_some(d_in);
    cfg.metadata = SaeMetadata {
        extra,
        ..SaeMetadata::default()
    };
    Sae::with_parts(cfg, w_enc, b_enc, w_dec, b_dec, None, None, w_skip)
}
