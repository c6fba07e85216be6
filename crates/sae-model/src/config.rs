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
}

impl Activation {
    /// The SAELens `architecture` name of this activation.
    pub fn architecture(&self) -> &'static str {
        match self {
            Activation::Relu => "standard",
            Activation::TopK { .. } => "topk",
            Activation::JumpRelu => "jumprelu",
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

/// Resolved configuration of an SAE (independent of the file format it was read from).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaeConfig {
    /// Width of the input activations.
    pub d_in: usize,
    /// Number of latents.
    pub d_sae: usize,
    /// Inference activation.
    pub activation: Activation,
    /// Subtract `b_dec` from the input before encoding.
    pub apply_b_dec_to_input: bool,
    /// Input normalization: "none" (or SAELens' "expected_average_only_in", whose factor SAELens
    /// folds into the weights when it saves, so inference applies nothing).
    pub normalize_activations: String,
    /// Element type of the saved weights; always "float32" when we save.
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
            activation,
            apply_b_dec_to_input: true,
            normalize_activations: NORMALIZE_NONE.to_string(),
            dtype: "float32".to_string(),
            metadata: SaeMetadata::default(),
        }
    }
}

/// `normalize_activations` value for "no normalization".
pub const NORMALIZE_NONE: &str = "none";
/// SAELens' "expected_average_only_in": the scaling factor is folded into the weights on save.
pub const NORMALIZE_EXPECTED_AVERAGE_ONLY_IN: &str = "expected_average_only_in";

/// Whether inference can run with this `normalize_activations` value (it applies no scaling).
pub fn normalization_supported(name: &str) -> bool {
    name == NORMALIZE_NONE || name == NORMALIZE_EXPECTED_AVERAGE_ONLY_IN
}
