//! The fast forward path (packed host buffers, fused weights, direct gemm) against the plain candle forward
//! (the reference) at every hook: tiny random GPT-2, Llama (GQA, llama3 rope), Qwen2 (qkv bias), BERT,
//! the real MiniLM and the real SmolLM2 GGUF (interleaved rope), over a right-padded batch of mixed lengths.

mod common;

use candle_core::{Device, Tensor};
use sae_lm::{resolve_model, Capture, Hook, Model, ModelSpec, Packed, RowSink};

/// Max |fast - reference| over the real positions, relative to max(1, max |reference|).
fn rel_diff(fast: &Tensor, reference: &Tensor, lengths: &[usize]) -> f32 {
    let mut worst = 0f32;
    for (k, &len) in lengths.iter().enumerate() {
        let a: Vec<f32> = fast
            .get(k)
            .unwrap()
            .narrow(0, 0, len)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let b: Vec<f32> = reference
            .get(k)
            .unwrap()
            .narrow(0, 0, len)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
        let d = a
            .iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        worst = worst.max(d / scale);
    }
    worst
}

fn inputs(vocab: usize, lengths: &[usize]) -> (Tensor, Vec<Vec<u32>>) {
    let t = *lengths.iter().max().unwrap();
    let seqs: Vec<Vec<u32>> = lengths
        .iter()
        .enumerate()
        .map(|(k, &len)| {
            (0..len)
                .map(|i| ((i * 7919 + k * 104729 + 11) % vocab) as u32)
                .collect()
        })
        .collect();
    let flat: Vec<u32> = seqs
        .iter()
        .flat_map(|s| s.iter().copied().chain(std::iter::repeat_n(0, t - s.len())))
        .collect();
    (
        Tensor::from_vec(flat, (lengths.len(), t), &Device::Cpu).unwrap(),
        seqs,
    )
}

/// Collects packed rows per hook.
struct Rows(Vec<Hook>, Vec<Vec<f32>>);

impl RowSink for Rows {
    fn wants(&self, hook: Hook) -> bool {
        self.0.contains(&hook)
    }
    fn last_layer(&self) -> Option<usize> {
        self.0.iter().map(|h| h.layer).max()
    }
    fn put_rows(&mut self, hook: Hook, rows: &[f32], _width: usize) -> sae_lm::Result<()> {
        let i = self.0.iter().position(|h| *h == hook).unwrap();
        self.1[i] = rows.to_vec();
        Ok(())
    }
}

fn check(model: &Model, hooks: &[Hook], lengths: &[usize], name: &str) {
    let (ids, seqs) = inputs(model.dims().vocab_size, lengths);
    let mut fast = Capture::new(hooks);
    assert!(model.forward(&ids, lengths, &mut fast).unwrap().is_none());
    let mut reference = Capture::new(hooks);
    model
        .forward_reference(&ids, lengths, &mut reference)
        .unwrap();
    for hook in hooks {
        let d = rel_diff(
            fast.get(*hook).unwrap(),
            reference.get(*hook).unwrap(),
            lengths,
        );
        assert!(
            d <= 1e-4,
            "{name} {hook}: fast vs reference relative max |diff| {d}"
        );
    }
    // The packed entry point gives the same rows as the padded one, in packed order.
    let mut rows = Rows(hooks.to_vec(), vec![Vec::new(); hooks.len()]);
    model
        .forward_packed(&Packed::new(&seqs), &mut rows)
        .unwrap();
    for (hook, got) in hooks.iter().zip(&rows.1) {
        let padded = fast.get(*hook).unwrap();
        let want: Vec<f32> = lengths
            .iter()
            .enumerate()
            .flat_map(|(k, &len)| {
                padded
                    .get(k)
                    .unwrap()
                    .narrow(0, 0, len)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            })
            .collect();
        assert_eq!(got, &want, "{name} {hook}: packed rows");
    }
}

fn tiny(name: &str) {
    let dir = common::repo_root().join("tests/fixtures/parity").join(name);
    let resolved = resolve_model(&ModelSpec::new(dir.to_str().unwrap())).unwrap();
    let model = Model::load(&resolved, &Device::Cpu).unwrap();
    check(&model, &model.hooks(), &[7, 12, 1, 9], name);
}

#[test]
fn tiny_models_fast_path_matches_reference_at_every_hook() {
    for name in ["gpt2", "llama", "qwen2", "bert"] {
        tiny(name);
    }
}

#[test]
fn real_minilm_fast_path_matches_reference_at_every_hook() {
    let model = Model::load(&common::real_model(common::MINILM), &Device::Cpu).unwrap();
    check(&model, &model.hooks(), &[40, 128, 3, 77], "MiniLM");
}

#[test]
fn real_smollm2_fast_path_matches_reference_in_the_first_blocks() {
    let model = Model::load(&common::real_model(common::SMOLLM2), &Device::Cpu).unwrap();
    let hooks: Vec<Hook> = model.hooks().into_iter().filter(|h| h.layer < 3).collect();
    check(&model, &hooks, &[33, 64, 5], "SmolLM2");
}
