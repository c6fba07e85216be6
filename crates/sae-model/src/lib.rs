//! The sparse autoencoder: architectures, encode/decode, SAELens and sparsify formats, evaluation metrics.

pub mod absorption;
pub mod config;
pub mod cosine;
pub mod error;
pub mod eval;
pub mod forward;
mod json;
pub mod load;
pub mod metrics;
pub mod prefix;
pub mod sae;
pub mod saelens;
mod saelens_cfg;
pub mod scaler;
pub mod sparsify;
pub mod topk;
pub mod weights;

pub use absorption::{AbsorptionMetrics, AbsorptionStats, ParentAbsorption};
pub use config::{Activation, InputNorm, Reshape, SaeConfig, SaeMetadata};
pub use error::SaeError;
pub use eval::{
    evaluate, evaluate_report, evaluate_with_target, load_ground_truth, EvalMetrics, EvalReport,
    Evaluator,
};
pub use forward::{ForwardOutput, RowScale};
pub use load::SaeFormat;
pub use prefix::{PrefixMetrics, PrefixStats};
pub use sae::{Gate, Sae};
pub use saelens::{load_sparsity, HOOK_NAME_OUT};
