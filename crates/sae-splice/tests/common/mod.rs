//! The tiny transformers fixtures (tests/fixtures/parity, from scripts/make-parity-fixtures.py): the
//! model, the activations and logits transformers recorded, and its next-token losses.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use sae_lm::{resolve_model, Hook, HookSink, Model, ModelSpec};
use sae_splice::cross_entropy;

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

pub type Edit = Box<dyn Fn(&Tensor) -> Tensor>;

/// The test's own splice on the candle reference path: captures `read`'s tensor [1, t, d] and writes
/// `f(captured)` over `write`'s, keeping position 0's own value when `keep_first`.
pub struct CaptureThenWrite {
    pub read: Hook,
    pub write: Hook,
    pub f: Edit,
    pub keep_first: bool,
    pub held: Option<Tensor>,
}

impl HookSink for CaptureThenWrite {
    fn wants(&self, h: Hook) -> bool {
        h == self.read || h == self.write
    }
    fn last_layer(&self) -> Option<usize> {
        Some(self.write.layer)
    }
    fn put(&mut self, _: Hook, _: &Tensor) -> sae_lm::Result<()> {
        Ok(())
    }
    fn edit(&mut self, h: Hook, x: &Tensor) -> sae_lm::Result<Option<Tensor>> {
        if h == self.read {
            self.held = Some(x.clone());
        }
        if h != self.write {
            return Ok(None);
        }
        let new = (self.f)(self.held.as_ref().expect("read before write"));
        let (_, t, _) = x.dims3()?;
        let mut m = vec![1.0f32; t];
        if self.keep_first {
            m[0] = 0.0;
        }
        let m = Tensor::from_vec(m, (1, t, 1), &Device::Cpu)?;
        Ok(Some(
            (new.broadcast_mul(&m)? + x.broadcast_mul(&(1.0 - &m)?)?)?,
        ))
    }
}

/// Summed next-token CE at positions `from..n-1` of the reference forward under `sink`.
pub fn reference_ce(model: &Model, ids: &[u32], sink: &mut dyn HookSink, from: usize) -> f64 {
    let input = Tensor::from_vec(ids.to_vec(), (1, ids.len()), &Device::Cpu).unwrap();
    let logits = model.logits_reference(&input, sink).unwrap();
    let rows: Vec<Vec<f32>> = logits.squeeze(0).unwrap().to_vec2().unwrap();
    (from..ids.len() - 1)
        .map(|i| cross_entropy(&rows[i], ids[i + 1]))
        .sum()
}
