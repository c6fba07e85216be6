//! Fixtures shared by the `sae attribute` tests: deterministic SAEs and transcoders saved with their hook
//! names, the tiny GPT-2 fixture with a word-level tokenizer, one call of the command and graph checks.

#![allow(dead_code)]

use std::path::Path;
use std::process::Output;

use candle_core::{DType, Device, Tensor};
use sae_model::{Activation, Sae, SaeConfig};

use crate::common::{s, sae_offline};

/// `sae attribute --model M --prompt P <target...> [--sae S]... --out OUT <extra...>`, offline.
pub fn attribute(
    model: &str,
    prompt: &str,
    target: &[&str],
    saes: &[&str],
    out: &Path,
    extra: &[&str],
) -> Output {
    let mut args = vec!["attribute", "--model", model, "--prompt", prompt];
    args.extend_from_slice(target);
    for sae in saes {
        args.extend(["--sae", sae]);
    }
    args.extend(["--out", s(out)]);
    args.extend_from_slice(extra);
    sae_offline(&args)
}

/// A seeded-looking deterministic TopK SAE (values from a fixed integer hash), saved with its hook name.
pub fn save_sae(dir: &Path, d: usize, d_sae: usize, hook: &str) {
    let val = |i: usize, scale: f32| -> f32 {
        let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
        ((h % 2001) as f32 / 1000.0 - 1.0) * scale
    };
    let t = |n: usize, shape: (usize, usize), off: usize, scale: f32| {
        let v: Vec<f32> = (0..n).map(|i| val(i + off, scale)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    };
    let mut cfg = SaeConfig::new(d, d_sae, Activation::TopK { k: 4 });
    cfg.metadata.hook_name = Some(hook.to_string());
    let w_enc = t(d * d_sae, (d, d_sae), 0, 1.0);
    let w_dec = t(d * d_sae, (d_sae, d), 7_000_000, 0.1);
    let zeros = |n| Tensor::zeros(n, DType::F32, &Device::Cpu).unwrap();
    let sae = Sae::new(cfg, w_enc, zeros(d_sae), w_dec, zeros(d), None).unwrap();
    sae.save(dir, None).unwrap();
}

/// A deterministic ReLU transcoder d -> d from the MLP's input of block `layer`, saved with its hook name.
pub fn save_transcoder(dir: &Path, d: usize, d_sae: usize, layer: usize) {
    let t = |n: usize, shape: (usize, usize), mul: usize, scale: f32| {
        let v: Vec<f32> = (0..n)
            .map(|i| ((i * mul % 2001) as f32 / 1000.0 - 1.0) * scale)
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    };
    let mut cfg = SaeConfig::new(d, d_sae, Activation::Relu);
    cfg.d_out = Some(d);
    cfg.apply_b_dec_to_input = false;
    cfg.metadata.hook_name = Some(format!("blocks.{layer}.ln2.hook_normalized"));
    let zeros = |n| Tensor::zeros(n, DType::F32, &Device::Cpu).unwrap();
    let (w_enc, w_dec) = (
        t(d * d_sae, (d, d_sae), 7919, 1.0),
        t(d * d_sae, (d_sae, d), 104_729, 0.1),
    );
    let sae = Sae::new(cfg, w_enc, zeros(d_sae), w_dec, zeros(d), None).unwrap();
    sae.save(dir, None).unwrap();
}

pub fn graph_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Every link joins two nodes of the graph; nodes carry the fields the JSON promises.
pub fn check_graph(g: &serde_json::Value) {
    let nodes = g["nodes"].as_array().unwrap();
    let ids: std::collections::HashSet<&str> =
        nodes.iter().map(|n| n["id"].as_str().unwrap()).collect();
    for n in nodes {
        for field in ["kind", "position", "activation", "attribution", "influence"] {
            assert!(!n[field].is_null(), "{field} missing in {n}");
        }
        let kind = n["kind"].as_str().unwrap();
        assert!(
            ["token", "latent", "error", "target"].contains(&kind),
            "{kind}"
        );
        if kind == "latent" || kind == "error" {
            assert!(n["layer"].is_u64(), "{n}");
        }
    }
    for l in g["links"].as_array().unwrap() {
        assert!(ids.contains(l["source"].as_str().unwrap()), "{l}");
        assert!(ids.contains(l["target"].as_str().unwrap()), "{l}");
        assert!(l["weight"].as_f64().unwrap() != 0.0);
    }
    assert!(nodes.iter().any(|n| n["kind"] == "latent"));
    assert!(nodes.iter().any(|n| n["kind"] == "target"));
}
