//! `sae attribute`: the graph JSON on the tiny GPT-2 fixture (given a word-level tokenizer here) and on the
//! real SmolLM2-135M with small random TopK SAEs, and one clear error for each kind of bad input.

mod browser;
mod common;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use common::{ok, one_line_error, s, sae_offline, MINILM, SMOLLM2};
use sae_model::{Activation, Sae, SaeConfig};

/// A seeded-looking deterministic TopK SAE (values from a fixed integer hash), saved with its hook name.
fn save_sae(dir: &Path, d: usize, d_sae: usize, hook: &str) {
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
fn save_transcoder(dir: &Path, d: usize, d_sae: usize, layer: usize) {
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

/// The tiny GPT-2 fixture copied with a word-level tokenizer: words w0..w59, [UNK] = 60.
fn gpt2_with_tokenizer(dir: &Path) {
    let src = common::repo().join("tests/fixtures/parity/gpt2");
    std::fs::create_dir_all(dir).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let vocab: serde_json::Map<String, serde_json::Value> = (0..60)
        .map(|i| (format!("w{i}"), serde_json::json!(i)))
        .chain([("[UNK]".to_string(), serde_json::json!(60))])
        .collect();
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
}

fn graph_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Every link joins two nodes of the graph; nodes carry the fields the JSON promises.
fn check_graph(g: &serde_json::Value) {
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

#[test]
fn tiny_gpt2_graph_json_and_conservation() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("gpt2");
    gpt2_with_tokenizer(&model);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    save_sae(&a, 16, 32, "blocks.0.hook_resid_post");
    save_sae(&b, 64, 96, "blocks.1.mlp.hook_post");
    let out = tmp.path().join("graph.json");
    let b_arg = format!("{}@blocks.1.mlp.hook_post", s(&b));
    ok(sae_offline(&[
        "attribute",
        "--model",
        s(&model),
        "--prompt",
        "w3 w17 w42 w8 w25",
        "--target-token",
        "w7",
        "--sae",
        s(&a),
        "--sae",
        &b_arg,
        "--out",
        s(&out),
        "--node-threshold",
        "0.9",
    ]));
    let v = graph_json(&out);
    let p = &v["prompts"][0];
    assert_eq!(p["token_ids"], serde_json::json!([3, 17, 42, 8, 25]));
    assert_eq!(p["relevance"]["lrp"].as_array().unwrap().len(), 5);
    assert_eq!(
        p["relevance"]["gradient_x_input"].as_array().unwrap().len(),
        5
    );
    assert_eq!(p["relevance"]["attn_lrp"].as_array().unwrap().len(), 5);
    let rel = p["conservation"]["relative_error"].as_f64().unwrap();
    assert!(rel < 1e-3, "conservation {rel}");
    check_graph(&p["graph"]);
    // Pruned by influence: the kept nodes carry >= 0.9 of it, the kept links >= 0.98 (the defaults).
    let share = |k: &str| p["graph"][k].as_f64().unwrap();
    assert!(share("node_influence_share") >= 0.9, "{}", p["graph"]);
    assert!(share("edge_influence_share") >= 0.98, "{}", p["graph"]);
    // The logit-difference and loss targets run too (the loss has no conservation line).
    ok(sae_offline(&[
        "attribute",
        "--model",
        s(&model),
        "--prompt",
        "w3 w17 w42",
        "--logit-diff",
        "w7",
        "w9",
        "--out",
        s(&out),
    ]));
    ok(sae_offline(&[
        "attribute",
        "--model",
        s(&model),
        "--prompt",
        "w3 w17 w42",
        "--loss",
        "--out",
        s(&out),
    ]));
    assert!(graph_json(&out)["prompts"][0]["conservation"].is_null());
}

#[test]
fn bad_input_gets_one_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("gpt2");
    gpt2_with_tokenizer(&model);
    let a = tmp.path().join("a");
    save_sae(&a, 16, 32, "blocks.0.hook_resid_post");
    let out = tmp.path().join("graph.json");
    let run = |extra: &[&str]| {
        let mut args = vec!["attribute", "--model", s(&model), "--out", s(&out)];
        args.extend_from_slice(extra);
        sae_offline(&args)
    };
    let other = format!("{}@blocks.1.hook_resid_post", s(&a));
    let err = one_line_error(&run(&[
        "--prompt",
        "w1 w2",
        "--target-token",
        "w7",
        "--sae",
        &other,
    ]));
    assert!(err.contains("trained on blocks.0.hook_resid_post"), "{err}");
    let long: Vec<String> = (0..40).map(|i| format!("w{}", i % 60)).collect();
    let err = one_line_error(&run(&["--prompt", &long.join(" "), "--target-token", "w7"]));
    assert!(
        err.contains("40 tokens") && err.contains("context of 32"),
        "{err}"
    );
    let err = one_line_error(&run(&["--prompt", "w1 w2", "--target-token", "w7 w8"]));
    assert!(err.contains("2 tokens, not one"), "{err}");
    let err = one_line_error(&sae_offline(&[
        "attribute",
        "--model",
        MINILM,
        "--prompt",
        "hello",
        "--target-token",
        "world",
        "--out",
        s(&out),
    ]));
    assert!(err.contains("encoder"), "{err}");
    assert!(!out.exists(), "a failed run wrote its output");
}

#[test]
fn smollm2_capital_of_france() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    save_sae(&a, 576, 1152, "blocks.3.hook_resid_post");
    let out = tmp.path().join("graph.json");
    let stdout = ok(sae_offline(&[
        "attribute",
        "--model",
        SMOLLM2,
        "--prompt",
        "The capital of France is",
        "--target-token",
        " Paris",
        "--sae",
        s(&a),
        "--out",
        s(&out),
        "--check",
    ]))
    .stdout;
    let text = String::from_utf8_lossy(&stdout);
    eprintln!("{text}");
    assert!(
        text.contains("LRP conservation") && text.contains("faithfulness"),
        "{text}"
    );
    let v = graph_json(&out);
    let p = &v["prompts"][0];
    assert_eq!(p["target"]["tokens"], serde_json::json!([" Paris"]));
    let rel = p["conservation"]["relative_error"].as_f64().unwrap();
    assert!(rel < 1e-2, "conservation on SmolLM2: {rel}");
    check_graph(&p["graph"]);
    let check = &p["check"];
    // At most --top-n (10) nodes, those after BOS, which is never ablated.
    let checked = check["nodes"].as_array().unwrap();
    assert!((1..=10).contains(&checked.len()), "{check}");
    for field in [
        "pearson_zero",
        "pearson_mean",
        "faithfulness",
        "m_full",
        "m_empty",
        "m_circuit",
    ] {
        assert!(check[field].is_number(), "{field}: {check}");
    }
}

/// Pearson r, computed here independently of the library.
fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// A TopK SAE trained here on SmolLM2's layer-4 residual stream (20k tokens, 400 steps): the top-10 nodes'
/// predicted ablation effects follow the measured ones on a fixed prompt set (pooled Pearson r > 0.5).
#[test]
fn smollm2_ablations_follow_the_attributions_with_a_trained_sae() {
    let tmp = tempfile::tempdir().unwrap();
    let (acts, sae_dir) = (tmp.path().join("acts"), tmp.path().join("sae"));
    let corpus = common::corpus().join("fortunes-computers.jsonl");
    let hook = "blocks.4.hook_resid_post";
    ok(sae_offline(&[
        "harvest",
        "--model",
        SMOLLM2,
        "--hook",
        hook,
        "--corpus",
        s(&corpus),
        "--out",
        s(&acts),
        "--max-tokens",
        "20000",
        "--batch",
        "8",
    ]));
    let cfg = tmp.path().join("train.toml");
    let toml =
        "d_sae = 1152\nsteps = 400\nbatch = 1024\nlr = 2e-3\n[arch]\nkind = \"topk\"\nk = 32\n";
    std::fs::write(&cfg, toml).unwrap();
    let store = acts.join(hook);
    ok(sae_offline(&[
        "train",
        "--store",
        s(&store),
        "--out",
        s(&sae_dir),
        "--config",
        s(&cfg),
    ]));
    let (mut predicted, mut measured) = (Vec::new(), Vec::new());
    for (prompt, token) in [
        ("The capital of France is", " Paris"),
        ("The opposite of hot is", " cold"),
    ] {
        let out = tmp.path().join("graph.json");
        let stdout = ok(sae_offline(&[
            "attribute",
            "--model",
            SMOLLM2,
            "--prompt",
            prompt,
            "--target-token",
            token,
            "--sae",
            s(&sae_dir),
            "--check",
            "--out",
            s(&out),
        ]))
        .stdout;
        eprintln!("{}", String::from_utf8_lossy(&stdout));
        let v = graph_json(&out);
        let check = &v["prompts"][0]["check"];
        for n in check["nodes"].as_array().unwrap() {
            predicted.push(n["predicted_zero"].as_f64().unwrap());
            measured.push(n["measured_zero"].as_f64().unwrap());
        }
        let f = check["faithfulness"].as_f64().unwrap();
        assert!(f.is_finite(), "faithfulness {f}");
    }
    assert!(predicted.len() >= 15, "{} nodes checked", predicted.len());
    let r = pearson(&predicted, &measured);
    eprintln!(
        "pooled zero-ablation Pearson r over {} nodes: {r:.3}",
        predicted.len()
    );
    assert!(r > 0.5, "r = {r}: {predicted:?} vs {measured:?}");
}

/// An SAE at the token embeddings and a transcoder in place of block 1's MLP go through the command,
/// `--check` included: with every node kept the circuit is the model.
#[test]
fn tiny_gpt2_embedding_sae_and_transcoder() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("gpt2");
    gpt2_with_tokenizer(&model);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    save_sae(&a, 16, 32, "blocks.0.hook_resid_pre");
    save_transcoder(&b, 16, 48, 1);
    let out = tmp.path().join("graph.json");
    ok(sae_offline(&[
        "attribute",
        "--model",
        s(&model),
        "--prompt",
        "w3 w17 w42 w8 w25",
        "--target-token",
        "w7",
        "--sae",
        s(&a),
        "--sae",
        s(&b),
        "--check",
        "--node-threshold",
        "1",
        "--edge-threshold",
        "1",
        "--out",
        s(&out),
    ]));
    let v = graph_json(&out);
    let g = &v["prompts"][0]["graph"];
    check_graph(g);
    for hook in ["blocks.0.hook_resid_pre", "blocks.1.ln2.hook_normalized"] {
        assert!(
            g["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["kind"] == "latent" && n["hook"] == hook),
            "no latent at {hook}"
        );
    }
    let f = v["prompts"][0]["check"]["faithfulness"].as_f64().unwrap();
    assert!((f - 1.0).abs() < 1e-3, "faithfulness {f}");
}

/// The page renders in headless chromium: one circle per node of the JSON, the tokens shaded; with the
/// SAE's report (harvested, trained and reported here on the tiny fixture) latents carry their explanation
/// and link to their dashboard cards.
#[test]
fn html_page_renders_in_chromium_with_explanations() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("gpt2");
    gpt2_with_tokenizer(&model);
    let corpus = tmp.path().join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    for d in 0..40u64 {
        let words: Vec<String> = (0..60u64)
            .map(|i| format!("w{}", (d * 7919 + i * 104_729) % 60))
            .collect();
        std::fs::write(corpus.join(format!("d{d}.txt")), words.join(" ")).unwrap();
    }
    let hook = "blocks.0.hook_resid_post";
    let (acts, sae_dir) = (tmp.path().join("acts"), tmp.path().join("sae"));
    let store = acts.join(hook);
    let reports = tmp.path().join("reports");
    let cfg = tmp.path().join("t.toml");
    let toml = "d_sae = 32\nsteps = 200\nbatch = 256\nlr = 2e-3\n[arch]\nkind = \"topk\"\nk = 4\n";
    std::fs::write(&cfg, toml).unwrap();
    ok(sae_offline(&[
        "harvest",
        "--model",
        s(&model),
        "--hook",
        hook,
        "--corpus",
        s(&corpus),
        "--out",
        s(&acts),
        "--ctx-len",
        "32",
    ]));
    ok(sae_offline(&[
        "train",
        "--store",
        s(&store),
        "--out",
        s(&sae_dir),
        "--config",
        s(&cfg),
    ]));
    let report = reports.join(hook);
    ok(sae_offline(&[
        "report",
        "--sae",
        s(&sae_dir),
        "--store",
        s(&store),
        "--model",
        s(&model),
        "--out",
        s(&report),
    ]));
    let (out, html) = (tmp.path().join("graph.json"), tmp.path().join("graph.html"));
    ok(sae_offline(&[
        "attribute",
        "--model",
        s(&model),
        "--prompt",
        "w3 w17 w42 w8",
        "--target-token",
        "w7",
        "--sae",
        s(&sae_dir),
        "--out",
        s(&out),
        "--html",
        s(&html),
        "--report-dir",
        s(&reports),
        "--node-threshold",
        "1",
    ]));
    let v = graph_json(&out);
    let nodes = v["prompts"][0]["graph"]["nodes"].as_array().unwrap();
    let latents: Vec<_> = nodes.iter().filter(|n| n["kind"] == "latent").collect();
    assert!(!latents.is_empty());
    assert!(
        latents.iter().all(|n| n["explanation"]
            .as_str()
            .is_some_and(|e| e.starts_with("token"))),
        "{latents:?}"
    );
    let url = format!("file://{}", html.canonicalize().unwrap().display());
    let dom = browser::dump_dom(&url);
    assert!(dom.contains("<svg class=\"graph\""), "{dom}");
    assert_eq!(dom.matches("<circle").count(), nodes.len(), "{dom}");
    assert_eq!(dom.matches("class=\"tok\"").count(), 4);
    let card = format!("{}/{hook}/index.html#latents/", reports.display());
    assert!(dom.contains(&card), "{dom}");
    assert!(dom.contains("token in {"), "{dom}");
}
