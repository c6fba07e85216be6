//! `sae report` / `sae inspect` end to end on a store whose latents are token detectors by construction.

mod report_common;

use report_common::*;

#[test]
fn report_finds_the_detectors_and_inspect_prints_a_card() {
    let f = fixture();
    let out = f.dir.path().join("out");
    let r = report(&f, &out, &["--top", "4"]);
    assert_eq!(r["format"], "sae-report");
    assert_eq!(r["version"], 2);
    let latents = &r["groups"][0];
    assert_eq!(latents["kind"], "latents");
    let units = latents["units"].as_array().unwrap();
    assert_eq!(units.len(), D_SAE);
    let expect = [
        (0, serde_json::json!({"kind": "token", "token": 1})),
        (1, serde_json::json!({"kind": "prev_token", "token": 0})),
        (
            2,
            serde_json::json!({"kind": "bigram", "prev": 1, "token": 2}),
        ),
        (3, serde_json::json!({"kind": "token", "token": 7})),
        (4, serde_json::json!({"kind": "token", "token": 8})),
    ];
    for (u, h) in expect {
        let e = &units[u]["explanation"];
        assert_eq!(e["hypothesis"], h, "latent {u}");
        assert!(
            (e["f1"].as_f64().unwrap() - 1.0).abs() < 1e-9,
            "latent {u}: {e}"
        );
    }
    assert_eq!(units[0]["explanation_text"], "token \" cat\"");
    assert_eq!(
        units[2]["explanation_text"],
        "token \" sat\" after \" cat\""
    );
    // Density is exact: latent 0 fires exactly on "cat".
    let cats = f.tokens.iter().filter(|&&t| t == 1).count() as u64;
    assert_eq!(units[0]["active"].as_u64().unwrap(), cats);
    assert!(units[5]["explanation"].is_null());
    assert_eq!(latents["summary"]["dead"], 1);
    assert_eq!(latents["summary"]["monosemantic"], 5);
    assert_eq!(units[0]["top"].as_array().unwrap().len(), 4);
    // The basis directions (the store's columns) are one-hot token / previous-token indicators.
    let basis = &r["groups"][1];
    assert_eq!(basis["kind"], "basis");
    assert_eq!(
        basis["units"][3]["explanation"]["hypothesis"],
        serde_json::json!({"kind": "token", "token": 3})
    );
    // The SAE folder has no metrics.jsonl or eval_spliced.json: the sections say so.
    assert!(r["training"].is_null() && r["spliced_eval"].is_null());
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("id=\"training\"") && html.contains("id=\"no-training\""));
    assert!(html.contains("id=\"spliced-eval\""));

    let o = sae(&["inspect", "--report", s(&out), "--latent", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let card = String::from_utf8(o.stdout).unwrap();
    assert!(card.contains("Latent #2"), "{card}");
    assert!(card.contains("token \" sat\" after \" cat\""), "{card}");
    assert!(card.contains(" cat[[ sat]]"), "{card}");
    let o = sae(&["inspect", "--report", s(&out), "--latent", "99"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("latent 99 is out of range") && !err.contains("panicked"),
        "{err}"
    );
}

fn expect_error(args: &[&str], needle: &str) {
    let o = sae(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "expected failure for {args:?}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        err.trim().lines().count(),
        1,
        "one-line error expected: {err}"
    );
}

#[test]
fn bad_inputs_give_one_clear_error_each() {
    let f = fixture();
    let out = f.dir.path().join("out");
    let (st, sa, tk, o) = (s(&f.store), s(&f.sae), s(&f.tokenizer), s(&out));
    // Missing tokenizer: a synthetic store names no model.
    expect_error(
        &["report", "--sae", sa, "--store", st, "--out", o],
        "no tokenizer",
    );
    let missing = f.dir.path().join("nope.json");
    expect_error(
        &[
            "report",
            "--sae",
            sa,
            "--store",
            st,
            "--tokenizer",
            s(&missing),
            "--out",
            o,
        ],
        "no tokenizer",
    );
    // Store without token ids.
    let bare = f.dir.path().join("bare");
    let mut w = sae_store::StoreWriter::create(
        &bare,
        sae_store::StoreSpec {
            d: 24,
            dtype: sae_store::DType::F32,
            shard_rows: 8,
            source: synth_source(4, 24),
            with_token_ids: false,
            with_doc_ids: false,
            with_positions: false,
        },
    )
    .unwrap();
    w.push(
        sae_store::RowBatch {
            acts: &[0.5; 96],
            ..Default::default()
        },
        None,
    )
    .unwrap();
    w.finish(0).unwrap();
    expect_error(
        &[
            "report",
            "--sae",
            sa,
            "--store",
            s(&bare),
            "--tokenizer",
            tk,
            "--out",
            o,
        ],
        "has no token ids",
    );
    // Different width.
    let narrow = f.dir.path().join("narrow");
    let sae_small = {
        let dev = candle_core::Device::Cpu;
        let cfg = sae_model::SaeConfig::new(5, 3, sae_model::Activation::Relu);
        let t = |r: usize, c: usize| {
            candle_core::Tensor::zeros((r, c), candle_core::DType::F32, &dev).unwrap()
        };
        let v = |n: usize| candle_core::Tensor::zeros(n, candle_core::DType::F32, &dev).unwrap();
        sae_model::Sae::new(cfg, t(5, 3), v(3), t(3, 5), v(5), None).unwrap()
    };
    sae_small.save(&narrow, None).unwrap();
    expect_error(
        &[
            "report",
            "--sae",
            s(&narrow),
            "--store",
            st,
            "--tokenizer",
            tk,
            "--out",
            o,
        ],
        "d_in = 5",
    );
    // Different model: the SAE's metadata names another model than the harvested store.
    let hstore = f.dir.path().join("hstore");
    write_store(&hstore, 2, 64, harvest_source("blocks.1.hook_resid_post"));
    let other = f.dir.path().join("other-sae");
    detector_sae(Some("org/model-b"), Some("blocks.1.hook_resid_post"))
        .save(&other, None)
        .unwrap();
    expect_error(
        &[
            "report",
            "--sae",
            s(&other),
            "--store",
            s(&hstore),
            "--tokenizer",
            tk,
            "--out",
            o,
        ],
        "different models",
    );
    let hook_sae = f.dir.path().join("hook-sae");
    detector_sae(Some("org/model-a"), Some("blocks.2.hook_resid_post"))
        .save(&hook_sae, None)
        .unwrap();
    expect_error(
        &[
            "report",
            "--sae",
            s(&hook_sae),
            "--store",
            s(&hstore),
            "--tokenizer",
            tk,
            "--out",
            o,
        ],
        "hook",
    );
    // Neurons from another layer.
    let nstore = f.dir.path().join("nstore");
    write_store(&nstore, 2, 64, harvest_source("blocks.4.mlp.hook_post"));
    let good = f.dir.path().join("good-sae");
    detector_sae(Some("org/model-a"), Some("blocks.1.hook_resid_post"))
        .save(&good, None)
        .unwrap();
    expect_error(
        &[
            "report",
            "--sae",
            s(&good),
            "--store",
            s(&hstore),
            "--neurons",
            s(&nstore),
            "--tokenizer",
            tk,
            "--out",
            o,
        ],
        "layer 4",
    );
    assert!(!out.exists(), "a failed report must write nothing");
}

#[test]
fn neurons_of_the_same_layer_join_the_comparison() {
    let f = fixture();
    let resid = f.dir.path().join("resid");
    write_store(&resid, 6, 64, harvest_source("blocks.1.hook_resid_post"));
    // "Neurons": the same one-hot rows, so each neuron is a token or previous-token detector.
    let neurons = f.dir.path().join("neurons");
    write_store(&neurons, 6, 100, harvest_source("blocks.1.mlp.hook_post"));
    let sae_dir = f.dir.path().join("sae-a");
    detector_sae(Some("org/model-a"), Some("blocks.1.hook_resid_post"))
        .save(&sae_dir, None)
        .unwrap();
    let out = f.dir.path().join("out");
    let args = [
        "report",
        "--sae",
        s(&sae_dir),
        "--store",
        s(&resid),
        "--neurons",
        s(&neurons),
        "--tokenizer",
        s(&f.tokenizer),
        "--out",
        s(&out),
        "--max-rows",
        "200",
    ];
    let o = sae(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("MLP neurons of blocks.1.mlp.hook_post"),
        "{stdout}"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let kinds: Vec<&str> = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["latents", "basis", "neurons"]);
    let n = &r["groups"][2];
    assert_eq!(n["rows"], 200, "--max-rows caps every store");
    assert_eq!(
        n["active_rule"],
        serde_json::json!({"rule": "fraction_of_max", "fraction": 0.5})
    );
    // Column 1 of the rows is the one-hot of token "cat": a perfect detector.
    assert_eq!(
        n["units"][1]["explanation"]["hypothesis"],
        serde_json::json!({"kind": "token", "token": 1})
    );
    assert!((n["units"][1]["explanation"]["f1"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    assert_eq!(n["summary"]["units"], 24);
    let o = sae(&[
        "inspect",
        "--report",
        s(&out),
        "--latent",
        "13",
        "--group",
        "neurons",
    ]);
    let card = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && card.contains("Neuron #13") && card.contains("after token \" cat\""),
        "{card}"
    );
}
