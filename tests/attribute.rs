//! `sae attribute` on the tiny GPT-2 fixture (given a word-level tokenizer here): the graph JSON,
//! conservation, an embedding SAE and a transcoder, the HTML page, and one clear error for each kind of
//! bad input. The real SmolLM2-135M runs are in tests/attribute_smollm2.rs.

mod attribute_common;
mod browser;
mod common;

use attribute_common::{attribute, check_graph, graph_json, save_sae, save_transcoder};
use common::{gpt2_with_tokenizer, ok, one_line_error, s, sae_offline, MINILM};

const PROMPT: &str = "w3 w17 w42 w8 w25";
const TARGET: [&str; 2] = ["--target-token", "w7"];

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
    let saes = [s(&a), b_arg.as_str()];
    let extra = ["--node-threshold", "0.9"];
    ok(attribute(s(&model), PROMPT, &TARGET, &saes, &out, &extra));
    let v = graph_json(&out);
    let p = &v["prompts"][0];
    assert_eq!(p["token_ids"], serde_json::json!([3, 17, 42, 8, 25]));
    for method in ["lrp", "gradient_x_input", "attn_lrp"] {
        let r = p["relevance"][method].as_array().unwrap();
        assert_eq!(r.len(), 5, "{method}");
    }
    let rel = p["conservation"]["relative_error"].as_f64().unwrap();
    assert!(rel < 1e-3, "conservation {rel}");
    check_graph(&p["graph"]);
    // Pruned by influence: the kept nodes carry >= 0.9 of it, the kept links >= 0.98 (the defaults).
    let share = |k: &str| p["graph"][k].as_f64().unwrap();
    assert!(share("node_influence_share") >= 0.9, "{}", p["graph"]);
    assert!(share("edge_influence_share") >= 0.98, "{}", p["graph"]);
    // The logit-difference and loss targets run too (the loss has no conservation line).
    let diff = ["--logit-diff", "w7", "w9"];
    ok(attribute(s(&model), "w3 w17 w42", &diff, &[], &out, &[]));
    ok(attribute(
        s(&model),
        "w3 w17 w42",
        &["--loss"],
        &[],
        &out,
        &[],
    ));
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
    let run = |prompt: &str, target: &[&str], saes: &[&str]| {
        one_line_error(&attribute(s(&model), prompt, target, saes, &out, &[]))
    };
    let other = format!("{}@blocks.1.hook_resid_post", s(&a));
    let err = run("w1 w2", &TARGET, &[&other]);
    assert!(err.contains("trained on blocks.0.hook_resid_post"), "{err}");
    let long: Vec<String> = (0..40).map(|i| format!("w{}", i % 60)).collect();
    let err = run(&long.join(" "), &TARGET, &[]);
    assert!(
        err.contains("40 tokens") && err.contains("context of 32"),
        "{err}"
    );
    let err = run("w1 w2", &["--target-token", "w7 w8"], &[]);
    assert!(err.contains("2 tokens, not one"), "{err}");
    let target = ["--target-token", "world"];
    let err = one_line_error(&attribute(MINILM, "hello", &target, &[], &out, &[]));
    assert!(err.contains("encoder"), "{err}");
    assert!(!out.exists(), "a failed run wrote its output");
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
    let extra = ["--check", "--node-threshold", "1", "--edge-threshold", "1"];
    let saes = [s(&a), s(&b)];
    ok(attribute(s(&model), PROMPT, &TARGET, &saes, &out, &extra));
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
    let extra = [
        "--html",
        s(&html),
        "--report-dir",
        s(&reports),
        "--node-threshold",
        "1",
    ];
    let saes = [s(&sae_dir)];
    ok(attribute(
        s(&model),
        "w3 w17 w42 w8",
        &TARGET,
        &saes,
        &out,
        &extra,
    ));
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
