//! The sparse autoencoder: architectures, encode/decode, SAELens and sparsify formats, evaluation metrics.

pub mod config;
pub mod cosine;
pub mod error;
pub mod eval;
mod json;
pub mod load;
pub mod metrics;
pub mod sae;
pub mod saelens;
pub mod sparsify;
pub mod topk;
pub mod weights;

pub use config::{Activation, SaeConfig, SaeMetadata};
pub use error::SaeError;
pub use eval::{evaluate, load_ground_truth, EvalMetrics, Evaluator};
pub use load::SaeFormat;
pub use sae::Sae;
pub use saelens::load_sparsity;
