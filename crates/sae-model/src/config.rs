//! The resolved SAE configuration: width, inference activation, input handling and provenance.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Inference activation applied to the pre-activations `z = W_enc^T (x - b_dec) + b_enc`.
///
/// BatchTopK SAEs are saved as [`Activation::JumpRelu`] with their global threshold in every
/// threshold entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Activation {
    /// `f = max(z, 0)` (SAELens "standard").
    Relu,
    /// Keep the `k` largest pre-activations of each row, then ReLU; all others are 0 (SAELens "topk").
    #[serde(rename = "topk")]
    TopK {
        /// Latents kept per row.
        k: usize,
    },
    /// `f = max(z, 0) * [z > theta]` with a per-latent threshold theta (SAELens "jumprelu").
    #[serde(rename = "jumprelu")]
    JumpRelu,
    /// SAELens "gated" (Rajamanoharan et al. 2024): `f = [x W_enc + b_gate > 0] *
    /// max(x (W_enc * exp(r_mag)) + b_mag, 0)`, with b_gate stored as `b_enc`.
    #[serde(rename = "gated")]
    Gated,
    /// sparsify's "groupmax": the latents split into `k` consecutive groups of d_sae / k; in each,
    /// only the largest `max(z, 0)` is kept (ties to the lower index).
    #[serde(rename = "groupmax")]
    GroupMax {
        /// Number of groups, and so of latents kept per row.
        k: usize,
    },
}

impl Activation {
    /// The SAELens `architecture` name of this activation.
    pub fn architecture(&self) -> &'static str {
        match self {
            Activation::Relu => "standard",
            Activation::TopK { .. } => "topk",
            Activation::JumpRelu => "jumprelu",
            Activation::Gated => "gated",
            Activation::GroupMax { .. } => "groupmax",
        }
    }
}

/// Where an SAE came from and how it was trained; every field is optional. SAELens calls this
/// `metadata`; fields it (or a later tool) writes that are not named here are kept in `extra`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SaeMetadata {
    /// Model the activations came from, e.g. "gpt2" or a Hugging Face id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    /// Hook point, e.g. "blocks.3.hook_resid_post".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_name: Option<String>,
    /// Context length in tokens the activations were harvested with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_size: Option<usize>,
    /// Whether a BOS token was prepended to each context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepend_bos: Option<bool>,
    /// The data the SAE was trained on (a dataset id or an activation store path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_path: Option<String>,
    /// The training architecture when it differs from the saved inference one
    /// (e.g. "batchtopk" saved as jumprelu, "relu-l1" saved as standard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trained_arch: Option<String>,
    /// Any other metadata, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Input normalization applied before encoding (SAELens `normalize_activations`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputNorm {
    /// No normalization.
    #[default]
    None,
    /// A constant scaling factor estimated before training (Anthropic, April 2024). SAELens folds
    /// it into the weights when it saves, so inference applies nothing; a folder whose
    /// `activation_scaler.json` still holds the factor has it folded in at load.
    ExpectedAverageOnlyIn,
    /// Each row scaled to norm sqrt(d_in) on the way in, and back on the way out.
    ConstantNormRescale,
    /// Each row centred and divided by (its std + 1e-5) on the way in (std with Bessel's
    /// correction, as torch's default); the output multiplied by the std and shifted back.
    LayerNorm,
}

impl InputNorm {
    /// Every value, with its SAELens name.
    pub const ALL: [InputNorm; 4] = [
        InputNorm::None,
        InputNorm::ExpectedAverageOnlyIn,
        InputNorm::ConstantNormRescale,
        InputNorm::LayerNorm,
    ];

    /// The SAELens name.
    pub fn name(self) -> &'static str {
        match self {
            InputNorm::None => "none",
            InputNorm::ExpectedAverageOnlyIn => "expected_average_only_in",
            InputNorm::ConstantNormRescale => "constant_norm_rescale",
            InputNorm::LayerNorm => "layer_norm",
        }
    }

    /// The value named `name`, if supported.
    pub fn parse(name: &str) -> Option<InputNorm> {
        InputNorm::ALL.into_iter().find(|n| n.name() == name)
    }
}

/// How input rows are laid out (SAELens `reshape_activations`). Our rows are always flat, so
/// `hook_z` (attention SAEs on `[n_heads, d_head]` flattened to `n_heads * d_head`) changes
/// nothing at inference; it is kept so that the folder round-trips.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reshape {
    /// Rows are the hook's activations as they are.
    #[default]
    None,
    /// Rows are `hook_z` ([n_heads, d_head]) flattened head-major.
    HookZ,
}

impl Reshape {
    /// The SAELens name.
    pub fn name(self) -> &'static str {
        match self {
            Reshape::None => "none",
            Reshape::HookZ => "hook_z",
        }
    }
}

/// Resolved configuration of an SAE (independent of the file format it was read from).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaeConfig {
    /// Width of the input activations.
    pub d_in: usize,
    /// Number of latents.
    pub d_sae: usize,
    /// Width of the output, for a transcoder (it predicts another hook's activations from this
    /// one's); `None` for an autoencoder, whose output is its input's reconstruction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d_out: Option<usize>,
    /// Inference activation.
    pub activation: Activation,
    /// Subtract `b_dec` from the input before encoding (autoencoders only).
    pub apply_b_dec_to_input: bool,
    /// Input normalization.
    #[serde(default)]
    pub normalize_activations: InputNorm,
    /// Input row layout.
    #[serde(default)]
    pub reshape_activations: Reshape,
    /// Element type of the saved weights we read; always "float32" when we save.
    pub dtype: String,
    /// Provenance.
    pub metadata: SaeMetadata,
}

impl SaeConfig {
    /// A config with SAELens defaults: b_dec applied to the input, no normalization, float32.
    pub fn new(d_in: usize, d_sae: usize, activation: Activation) -> SaeConfig {
        SaeConfig {
            d_in,
            d_sae,
            d_out: None,
            activation,
            apply_b_dec_to_input: true,
            normalize_activations: InputNorm::None,
            reshape_activations: Reshape::None,
            dtype: "float32".to_string(),
            metadata: SaeMetadata::default(),
        }
    }

    /// Width of the output: `d_out` for a transcoder, else `d_in`.
    pub fn out_width(&self) -> usize {
        self.d_out.unwrap_or(self.d_in)
    }

    /// Whether this is a transcoder (its output belongs to another hook).
    pub fn is_transcoder(&self) -> bool {
        self.d_out.is_some()
    }
}
