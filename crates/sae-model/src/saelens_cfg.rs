//! SAELens `cfg.json`: the >= 6.0 layout (`architecture` + nested `metadata`) and the pre-6.0
//! flat one (`activation_fn_str`, `hook_point`, ...), resolved into an [`SaeConfig`].

use serde_json::Value;

use crate::json::CfgObject;
use crate::{Activation, InputNorm, Reshape, SaeConfig, SaeError, SaeMetadata};

/// A parsed SAELens config plus what the weights loader must still do.
pub(crate) struct LensCfg {
    /// The resolved config.
    pub cfg: SaeConfig,
    /// TopK with `rescale_acts_by_decoder_norm`: the decoder norms are folded in at load.
    pub rescale_by_decoder_norm: bool,
    /// A skip transcoder: the weights hold `W_skip`.
    pub skip: bool,
}

/// What an SAELens architecture name means.
struct ArchSpec {
    activation: Activation,
    transcoder: bool,
    skip: bool,
}

/// Every inference architecture we read, by its SAELens name.
pub const SUPPORTED_ARCHITECTURES: &str = "standard, topk, jumprelu, gated, transcoder, \
skip_transcoder, jumprelu_transcoder, jumprelu_skip_transcoder (batchtopk and matryoshka \
are saved as jumprelu)";

fn arch_spec(obj: &CfgObject, arch: &str) -> Result<ArchSpec, SaeError> {
    let spec = |activation, transcoder, skip| ArchSpec {
        activation,
        transcoder,
        skip,
    };
    Ok(match arch {
        "standard" => spec(Activation::Relu, false, false),
        "jumprelu" => spec(Activation::JumpRelu, false, false),
        "gated" => spec(Activation::Gated, false, false),
        "topk" => spec(Activation::TopK { k: obj.usize("k")? }, false, false),
        "transcoder" => spec(Activation::Relu, true, false),
        "skip_transcoder" => spec(Activation::Relu, true, true),
        "jumprelu_transcoder" => spec(Activation::JumpRelu, true, false),
        "jumprelu_skip_transcoder" => spec(Activation::JumpRelu, true, true),
        other => return Err(unknown_arch(obj, other)),
    })
}

/// The SAELens architecture name an SAE is saved under; None where SAELens has none
/// (TopK or gated transcoders, groupmax).
pub(crate) fn lens_architecture(cfg: &SaeConfig, skip: bool) -> Option<&'static str> {
    Some(match (cfg.activation, cfg.is_transcoder(), skip) {
        (Activation::GroupMax { .. }, _, _) => return None,
        (a, false, false) => a.architecture(),
        (Activation::Relu, true, false) => "transcoder",
        (Activation::Relu, true, true) => "skip_transcoder",
        (Activation::JumpRelu, true, false) => "jumprelu_transcoder",
        (Activation::JumpRelu, true, true) => "jumprelu_skip_transcoder",
        _ => return None,
    })
}

pub(crate) fn unknown_arch(obj: &CfgObject, name: impl Into<String>) -> SaeError {
    SaeError::UnknownArchitecture {
        path: obj.path.clone(),
        name: name.into(),
    }
}

/// Parses either layout.
pub(crate) fn parse(obj: &CfgObject) -> Result<LensCfg, SaeError> {
    if obj.get("metadata").is_some_and(Value::is_object) {
        parse_modern(obj)
    } else {
        parse_flat(obj)
    }
}

/// `normalize_activations`: a string, or (pre-6.0 configs) a bool (true meaning
/// expected_average_only_in) or null meaning "none".
fn normalization(obj: &CfgObject) -> Result<InputNorm, SaeError> {
    let name = match obj.get("normalize_activations") {
        None | Some(Value::Bool(false)) => "none".to_string(),
        Some(Value::Bool(true)) => "expected_average_only_in".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => return Err(obj.bad(format!("normalize_activations: unexpected value {v}"))),
    };
    InputNorm::parse(&name).ok_or_else(|| SaeError::UnsupportedNormalization {
        path: obj.path.clone(),
        name,
    })
}

fn reshape(obj: &CfgObject, hook: Option<&str>) -> Result<Reshape, SaeError> {
    match obj.opt_str("reshape_activations")?.as_deref() {
        Some("hook_z") => Ok(Reshape::HookZ),
        Some("none") => Ok(Reshape::None),
        Some(other) => Err(obj.bad(format!(
            "unsupported reshape_activations {other:?} (supported: none, hook_z)"
        ))),
        // Pre-6.0 configs: SAELens reshapes when the hook is an attention hook_z.
        None if hook.is_some_and(|h| h.contains("hook_z")) => Ok(Reshape::HookZ),
        None => Ok(Reshape::None),
    }
}

/// Builds the config shared by both layouts.
fn resolve(
    obj: &CfgObject,
    spec: ArchSpec,
    d_sae: usize,
    metadata: SaeMetadata,
) -> Result<LensCfg, SaeError> {
    let d_in = obj.usize("d_in")?;
    let d_out = if spec.transcoder {
        Some(obj.opt_usize("d_out")?.unwrap_or(d_in))
    } else {
        None
    };
    let apply_b_dec = obj.opt_bool("apply_b_dec_to_input")?;
    if spec.transcoder && apply_b_dec == Some(true) {
        return Err(obj.bad("apply_b_dec_to_input is true, but transcoders do not support it"));
    }
    let reshape_activations = reshape(obj, metadata.hook_name.as_deref())?;
    Ok(LensCfg {
        rescale_by_decoder_norm: obj.opt_bool("rescale_acts_by_decoder_norm")? == Some(true),
        skip: spec.skip,
        cfg: SaeConfig {
            d_in,
            d_sae,
            d_out,
            activation: spec.activation,
            apply_b_dec_to_input: apply_b_dec.unwrap_or(!spec.transcoder),
            normalize_activations: normalization(obj)?,
            reshape_activations,
            dtype: obj.opt_str("dtype")?.unwrap_or_else(|| "float32".into()),
            metadata,
        },
    })
}

/// SAELens >= 6: `architecture` + nested `metadata`.
fn parse_modern(obj: &CfgObject) -> Result<LensCfg, SaeError> {
    let arch = obj
        .opt_str("architecture")?
        .unwrap_or_else(|| "standard".into());
    let spec = arch_spec(obj, &arch)?;
    let mut metadata: SaeMetadata = match obj.get("metadata") {
        Some(v) => {
            serde_json::from_value(v.clone()).map_err(|e| obj.bad(format!("metadata: {e}")))?
        }
        None => SaeMetadata::default(),
    };
    if let Some(Value::String(h)) = obj.get(crate::saelens::HOOK_NAME_OUT) {
        metadata
            .extra
            .entry(crate::saelens::HOOK_NAME_OUT.into())
            .or_insert_with(|| Value::String(h.clone()));
    }
    if metadata.trained_arch.is_none() {
        // SAELens records the training class of SAEs it saves in another inference form
        // (batchtopk and matryoshka_batchtopk as jumprelu).
        if let Some(Value::String(t)) = metadata.extra.get("training_architecture") {
            if *t != arch {
                metadata.trained_arch = Some(t.clone());
            }
        }
    }
    resolve(obj, spec, obj.usize("d_sae")?, metadata)
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
fn parse_flat(obj: &CfgObject) -> Result<LensCfg, SaeError> {
    let arch = obj
        .opt_str("architecture")?
        .unwrap_or_else(|| "standard".into());
    let act_fn = match obj.opt_str("activation_fn_str")? {
        Some(a) => a,
        None => obj
            .opt_str("activation_fn")?
            .unwrap_or_else(|| "relu".into()),
    };
    let spec = match (arch.as_str(), act_fn.as_str()) {
        ("standard", "relu") => arch_spec(obj, "standard")?,
        ("standard", "topk") | ("topk", _) => ArchSpec {
            activation: Activation::TopK { k: flat_k(obj)? },
            transcoder: false,
            skip: false,
        },
        ("standard", other) => {
            return Err(unknown_arch(
                obj,
                format!("standard with activation_fn_str {other:?}"),
            ))
        }
        (other, _) => arch_spec(obj, other)?,
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
    resolve(obj, spec, d_sae, metadata)
}
