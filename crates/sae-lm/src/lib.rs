//! Pretrained transformers for interpretability: models resolved through the Hugging Face hub cache or
//! local folders (GPT-2, Llama family incl. GGUF, BERT), their tokenizers, a plain candle forward (the
//! reference) and a fast packed forward, both offering TransformerLens-named hook points that a sink may
//! read or rewrite (splice), and next-token losses of causal models.
//!
//! Harvesting (corpus -> activation stores), spliced evaluation and attribution are built on this crate.

mod attention;
mod error;
mod fast;
mod files;
mod hooks;
mod hub;
mod lens;
mod linearize;
mod models;
mod tokenizer;

pub use error::{LmError, Result};
pub use fast::gemm::linear as gemm_linear;
pub use fast::{Packed, RowSink};
pub use files::ModelFiles;
pub use hooks::{all_hooks, valid_hooks_summary, Capture, Hook, HookPoint, HookSink};
pub use hub::{
    download, resolve_model, DownloadEvent, ModelSpec, Progress, ProgressEvent, ProgressHandler,
    ResolvedModel,
};
pub use lens::{LogitLens, TokenText};
pub use linearize::{Linearize, Rules};
pub use models::{Model, ModelDims};
pub use tokenizer::TextTokenizer;
