//! Shared helpers: the tiny parity fixtures (random GPT-2 / Llama / BERT configs), seeded random tensors
//! and small random SAEs.

#![allow(dead_code)]

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sae_lm::{resolve_model, Model, ModelSpec};
use sae_model::{Activation, Sae, SaeConfig};

/// A fixed prompt of the fixtures' 61-token vocabulary.
pub const IDS: [u32; 7] = [3, 17, 42, 8, 25, 11, 56];

/// Loads a tiny fixture model (`gpt2`, `llama`, `bert`).
pub fn fixture(name: &str) -> Model {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/parity")
        .join(name);
    let resolved = resolve_model(&ModelSpec::new(dir.to_str().unwrap())).unwrap();
    Model::load(&resolved, &Device::Cpu).unwrap()
}

/// Seeded uniform values in [-scale, scale].
pub fn uniform(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

/// A seeded random tensor of this shape, values in [-scale, scale].
pub fn random(rng: &mut StdRng, shape: &[usize], scale: f32) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(uniform(rng, n, scale), shape, &Device::Cpu).unwrap()
}

/// A seeded random ReLU SAE of width d_in -> d_sae (biases negative-ish so a fair share of latents is off).
pub fn random_sae(seed: u64, d_in: usize, d_sae: usize, activation: Activation) -> Sae {
    let mut rng = StdRng::seed_from_u64(seed);
    let w_enc = random(&mut rng, &[d_in, d_sae], 1.0);
    let b_enc = random(&mut rng, &[d_sae], 0.05);
    let w_dec = random(&mut rng, &[d_sae, d_in], 0.3);
    let b_dec = random(&mut rng, &[d_in], 0.01);
    let cfg = SaeConfig::new(d_in, d_sae, activation);
    Sae::new(cfg, w_enc, b_enc, w_dec, b_dec, None).unwrap()
}

/// A seeded rng.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}
