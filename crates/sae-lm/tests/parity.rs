//! Our forward passes against Hugging Face transformers, from fixtures written by
//! scripts/make-parity-fixtures.py (tiny random-weight GPT-2, Llama, Qwen2, BERT; the real all-MiniLM-L6-v2).
//! Every hook (and the logits) must match to max |diff| <= 1e-4, run alone and inside a padded batch.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use sae_lm::{resolve_model, Capture, Hook, Model, ModelSpec, TextTokenizer};

const TOL: f32 = 1e-4;

fn fixtures() -> PathBuf {
    common::repo_root().join("tests/fixtures/parity")
}

fn load_acts(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn ids_of(acts: &HashMap<String, Tensor>, k: usize) -> Vec<u32> {
    acts[&format!("{k}.input_ids")]
        .to_dtype(DType::U32)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Right-pads the inputs into one batch. -> ids [b, t]
fn batch(inputs: &[Vec<u32>]) -> (Tensor, Vec<usize>) {
    let t = inputs.iter().map(Vec::len).max().unwrap();
    let flat: Vec<u32> = inputs
        .iter()
        .flat_map(|x| x.iter().copied().chain(std::iter::repeat_n(0, t - x.len())))
        .collect();
    (
        Tensor::from_vec(flat, (inputs.len(), t), &Device::Cpu).unwrap(),
        inputs.iter().map(Vec::len).collect(),
    )
}

fn check_tiny(name: &str, expect_logits: bool) {
    let dir = fixtures().join(name);
    let resolved = resolve_model(&ModelSpec::new(dir.to_str().unwrap())).unwrap();
    let model = Model::load(&resolved, &Device::Cpu).unwrap();
    let acts = load_acts(&dir.join("acts.safetensors"));
    let n_inputs = (0..)
        .take_while(|k| acts.contains_key(&format!("{k}.input_ids")))
        .count();
    assert_eq!(n_inputs, 3);
    let inputs: Vec<Vec<u32>> = (0..n_inputs).map(|k| ids_of(&acts, k)).collect();
    let hooks = model.hooks();
    assert_eq!(hooks.len(), 12);

    // Batched (right-padded) run: every hook at the real positions of every input.
    let (ids, lengths) = batch(&inputs);
    let mut cap = Capture::new(&hooks);
    model.forward(&ids, &lengths, &mut cap).unwrap();
    let got = cap.take();
    for (k, len) in lengths.iter().enumerate() {
        for (hook, t) in hooks.iter().zip(&got) {
            let ours = t
                .as_ref()
                .unwrap()
                .get(k)
                .unwrap()
                .narrow(0, 0, *len)
                .unwrap();
            let theirs = &acts[&format!("{k}.{}", hook.name())];
            let d = max_diff(&ours, theirs);
            assert!(d <= TOL, "{name} input {k} {hook}: max |diff| {d}");
        }
    }
    // Single runs: logits, and a capture of one hook stops early and still matches.
    for (k, x) in inputs.iter().enumerate() {
        let ids = Tensor::from_slice(x, (1, x.len()), &Device::Cpu).unwrap();
        let logits = model
            .forward(&ids, &[x.len()], &mut Capture::new(&[]))
            .unwrap();
        assert_eq!(logits.is_some(), expect_logits);
        if let Some(l) = logits {
            let d = max_diff(&l.get(0).unwrap(), &acts[&format!("{k}.logits")]);
            assert!(d <= TOL, "{name} input {k} logits: max |diff| {d}");
        }
        let hook = Hook::parse("blocks.0.mlp.hook_post").unwrap();
        let mut cap = Capture::new(&[hook]);
        assert!(model.forward(&ids, &[x.len()], &mut cap).unwrap().is_none());
        let d = max_diff(
            &cap.get(hook).unwrap().get(0).unwrap(),
            &acts[&format!("{k}.{hook}")],
        );
        assert!(d <= TOL, "{name} input {k} {hook} alone: max |diff| {d}");
    }
}

#[test]
fn gpt2_matches_transformers_at_every_hook() {
    check_tiny("gpt2", true);
}

#[test]
fn llama_gqa_llama3_rope_matches_transformers_at_every_hook() {
    check_tiny("llama", true);
}

#[test]
fn qwen2_tied_qkv_bias_matches_transformers_at_every_hook() {
    check_tiny("qwen2", true);
}

#[test]
fn bert_matches_transformers_at_every_hook() {
    check_tiny("bert", false);
}

#[test]
fn real_minilm_resid_post_matches_transformers_hidden_states() {
    let resolved = common::real_model(common::MINILM);
    let model = Model::load(&resolved, &Device::Cpu).unwrap();
    let tok = TextTokenizer::load(&resolved).unwrap();
    let dir = fixtures().join("minilm");
    let acts = load_acts(&dir.join("acts.safetensors"));
    let sentences: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sentences.json")).unwrap())
            .unwrap();
    // Our tokenizer gives transformers' ids: [CLS] text [SEP].
    let inputs: Vec<Vec<u32>> = sentences
        .iter()
        .map(|s| [tok.prefix(), &tok.encode(s).unwrap(), tok.suffix()].concat())
        .collect();
    for (k, ids) in inputs.iter().enumerate() {
        assert_eq!(ids, &ids_of(&acts, k), "token ids of sentence {k}");
    }
    let n = model.dims().n_layers;
    let mut hooks: Vec<Hook> = (0..n)
        .map(|i| Hook::parse(&format!("blocks.{i}.hook_resid_post")).unwrap())
        .collect();
    hooks.push(Hook::parse("blocks.0.hook_resid_pre").unwrap());
    let (ids, lengths) = batch(&inputs);
    let mut cap = Capture::new(&hooks);
    model.forward(&ids, &lengths, &mut cap).unwrap();
    for (k, len) in lengths.iter().enumerate() {
        for (j, hook) in hooks.iter().enumerate() {
            let want = if j < n { j + 1 } else { 0 };
            let ours = cap
                .get(*hook)
                .unwrap()
                .get(k)
                .unwrap()
                .narrow(0, 0, *len)
                .unwrap();
            let d = max_diff(&ours, &acts[&format!("{k}.hidden_states.{want}")]);
            assert!(
                d <= TOL,
                "sentence {k} {hook} vs hidden_states[{want}]: max |diff| {d}"
            );
        }
    }
}
