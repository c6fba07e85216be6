//! Harvest activations from pretrained transformers (GPT-2, Llama family incl. GGUF, BERT) at named hook
//! points, from models resolved through the Hugging Face hub cache or local folders.

pub mod attention;
pub mod batches;
pub mod contexts;
pub mod corpus;
pub mod error;
pub mod fast;
pub mod files;
pub mod harvest;
pub mod hooks;
pub mod hub;
pub mod lens;
pub mod models;
mod rows;
mod sinks;
pub mod tokenizer;

pub use batches::{Batch, Batcher};
pub use contexts::{Context, Contexts, Cursor};
pub use corpus::{Corpus, Document};
pub use error::{HarvestError, Result};
pub use fast::{Packed, RowSink};
pub use files::ModelFiles;
pub use harvest::{harvest, HarvestConfig, HarvestProgress, HarvestSummary};
pub use hooks::{all_hooks, Capture, Hook, HookPoint, HookSink};
pub use hub::{download, resolve_model, ModelSpec, ResolvedModel};
pub use lens::{LogitLens, TokenText};
pub use models::{Model, ModelDims};
pub use tokenizer::TextTokenizer;
