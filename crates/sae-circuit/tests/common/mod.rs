//! Shared helpers: the tiny parity fixtures (random GPT-2 / Llama / BERT configs), seeded random tensors
//! and small random SAEs.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sae_circuit::{Check, GraphConfig, HookedSae, NodeKind, NodeRef, Replacement, Target};
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

/// Doubles 50 random latent / error nodes (and every token) and compares every latent pre-activation and
/// the target with the link weights.
pub fn check_interventions(name: &str, model: &Model, saes: &[HookedSae], target: Target) {
    let mut rep = Replacement::new(model, &IDS, &target, saes).unwrap();
    let all = GraphConfig {
        node_threshold: 1.0,
        edge_threshold: 1.0,
        ..GraphConfig::default()
    };
    let graph = rep.graph(&all).unwrap();
    let weight: HashMap<(&str, &str), f32> = graph
        .links
        .iter()
        .map(|l| ((l.source.as_str(), l.target.as_str()), l.weight))
        .collect();
    let mut sources: Vec<_> = graph
        .nodes
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::Latent | NodeKind::Error))
        .collect();
    sources.shuffle(&mut rng(7));
    let errors = sources.iter().filter(|n| n.kind == NodeKind::Error).count();
    assert!(
        errors >= 10 && sources.len() >= 50,
        "{name}: {} sources",
        sources.len()
    );
    let mut chosen: Vec<_> = sources.iter().take(50).copied().collect();
    // Error nodes on purpose too, and every token.
    chosen.extend(
        sources
            .iter()
            .filter(|n| n.kind == NodeKind::Error)
            .take(10),
    );
    chosen.extend(graph.nodes.iter().filter(|n| n.kind == NodeKind::Token));
    let (mut worst, mut big) = (0f32, 0usize);
    for src in chosen {
        let eff = rep.intervene(src.node, 1.0).unwrap();
        let pre: Vec<Vec<Vec<f32>>> = eff.pre_acts.iter().map(|t| t.to_vec2().unwrap()).collect();
        for n in &graph.nodes {
            let measured = match n.node {
                NodeRef::Latent {
                    sae,
                    position,
                    latent,
                } => pre[sae][position][latent],
                NodeRef::Target => eff.target,
                _ => continue,
            };
            let predicted = weight
                .get(&(src.id.as_str(), n.id.as_str()))
                .copied()
                .unwrap_or(0.0);
            let err = (measured - predicted).abs();
            assert!(
                err <= 1e-4,
                "{name}: {} -> {}: measured {measured}, link {predicted}",
                src.id,
                n.id
            );
            worst = worst.max(err);
            big += (predicted.abs() > 1e-3) as usize;
        }
    }
    assert!(
        big > 100,
        "{name}: only {big} links above 1e-3: the check would be vacuous"
    );
    eprintln!(
        "{name}: max abs error {worst:.2e} over {} links above 1e-3",
        big
    );
}

/// The graph with every node and link kept (thresholds 1) after BOS, its top-10 ablations checked in the
/// real forward: as a circuit it is the model itself, so m(M) is the target and faithfulness is 1.
pub struct WholeGraph<'a> {
    pub rep: Replacement<'a>,
    pub check: Check,
}

pub fn whole_graph<'a>(
    name: &str,
    model: &'a Model,
    saes: &'a [HookedSae],
    target: &Target,
) -> WholeGraph<'a> {
    let mut rep = Replacement::new(model, &IDS, target, saes).unwrap();
    rep.skip_prefix(1);
    let all = GraphConfig {
        node_threshold: 1.0,
        edge_threshold: 1.0,
        ..GraphConfig::default()
    };
    let graph = rep.graph(&all).unwrap();
    let check = rep.check(&graph, 10).unwrap();
    assert_eq!(check.nodes.len(), 10, "{name}");
    assert!((check.m_full - rep.target_value()).abs() < 1e-4, "{name}");
    assert!((check.faithfulness - 1.0).abs() < 1e-3, "{name}: {check:?}");
    WholeGraph { rep, check }
}
