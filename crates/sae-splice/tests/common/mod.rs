//! The tiny transformers fixtures (tests/fixtures/parity, from scripts/make-parity-fixtures.py): the
//! model, the activations and logits transformers recorded, and its next-token losses.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use sae_lm::{resolve_model, Model, ModelSpec};

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/parity")
        .join(name)
}

/// The model, transformers' recorded tensors (`{seq}.input_ids`, `{seq}.logits`, `{seq}.{hook}`) and
/// its losses (`losses.json`).
pub fn load(name: &str) -> (Model, HashMap<String, Tensor>, serde_json::Value) {
    let dir = fixture(name);
    let resolved = resolve_model(&ModelSpec::new(dir.to_str().unwrap())).unwrap();
    let model = Model::load(&resolved, &Device::Cpu).unwrap();
    let acts = candle_core::safetensors::load(dir.join("acts.safetensors"), &Device::Cpu).unwrap();
    let losses = std::fs::read_to_string(dir.join("losses.json")).unwrap();
    (model, acts, serde_json::from_str(&losses).unwrap())
}

/// The token ids of recorded sequence `k`.
pub fn ids(acts: &HashMap<String, Tensor>, k: usize) -> Vec<u32> {
    acts[&format!("{k}.input_ids")]
        .to_dtype(DType::U32)
        .unwrap()
        .to_vec1()
        .unwrap()
}

pub fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!((a - b).abs() <= tol, "{what}: {a} vs {b}");
}
