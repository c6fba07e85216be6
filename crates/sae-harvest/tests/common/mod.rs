//! Shared helpers: where the packaged real models are (see scripts/fetch-models.sh).

#![allow(dead_code)]

use std::path::PathBuf;

use sae_lm::{resolve_model, ModelSpec, ResolvedModel};

pub const MINILM: &str = "sentence-transformers/all-MiniLM-L6-v2";
pub const SMOLLM2: &str = "HuggingFaceTB/SmolLM2-135M-Instruct";

/// The repo root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `SAE_HF_CACHE`, else the folder scripts/fetch-models.sh fills.
pub fn hf_cache() -> PathBuf {
    match std::env::var_os("SAE_HF_CACHE") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => repo_root().join(".cache/huggingface/hub"),
    }
}

/// Resolves a packaged model offline, or panics saying which script to run.
pub fn real_model(id: &str) -> ResolvedModel {
    let spec = ModelSpec {
        id_or_path: id.into(),
        revision: None,
        offline: true,
        cache_dir: Some(hf_cache()),
    };
    resolve_model(&spec)
        .unwrap_or_else(|e| panic!("{e}\n(run scripts/fetch-models.sh first, or set SAE_HF_CACHE)"))
}
