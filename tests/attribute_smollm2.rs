//! `sae attribute` on the real SmolLM2-135M: a random TopK SAE (graph, conservation, `--check` fields), and a
//! TopK SAE trained here whose predicted ablation effects follow the measured ones.

mod attribute_common;
mod common;

use attribute_common::{attribute, check_graph, graph_json, save_sae};
use common::{ok, s, sae_offline, SMOLLM2};

#[test]
fn smollm2_capital_of_france() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    save_sae(&a, 576, 1152, "blocks.3.hook_resid_post");
    let out = tmp.path().join("graph.json");
    let target = ["--target-token", " Paris"];
    let (prompt, saes) = ("The capital of France is", [s(&a)]);
    let stdout = ok(attribute(
        SMOLLM2,
        prompt,
        &target,
        &saes,
        &out,
        &["--check"],
    ))
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
        let target = ["--target-token", token];
        let saes = [s(&sae_dir)];
        let stdout = ok(attribute(
            SMOLLM2,
            prompt,
            &target,
            &saes,
            &out,
            &["--check"],
        ))
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
