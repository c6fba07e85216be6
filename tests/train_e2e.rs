//! End to end: `sae synth` -> `sae train` -> `sae eval --json` recovers the true features of
//! superposed synthetic data (TopK, BatchTopK, ReLU-L1, JumpReLU), and
//! `sae train` fails with one clear line on bad input.

mod common;

use std::process::Output;

use common::{s as p, sae};
use sae_store::{DType, RowBatch, Source, StoreSpec, StoreWriter, SynthSource};

fn ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Trains a 512-latent SAE for `steps` steps at peak learning rate `lr` and returns
/// `sae eval --json`. A smaller problem and fewer steps than the README's runs: the tests use a
/// higher peak lr than the default 2e-3.
fn train_eval(arch: &str, steps: &str, lr: &str, extra: &[&str]) -> serde_json::Value {
    let tmp = tempfile::tempdir().unwrap();
    let (store, out) = (tmp.path().join("store"), tmp.path().join("sae"));
    common::synth_benchmark(&store, &[]);
    let mut args = vec![
        "train",
        "--store",
        p(&store),
        "--out",
        p(&out),
        "--arch",
        arch,
        "--d-sae",
        "512",
        "--steps",
        steps,
        "--batch",
        "1024",
        "--lr",
        lr,
    ];
    args.extend_from_slice(extra);
    ok(&sae(&args), "sae train");
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(
        metrics.lines().count() >= 10,
        "metrics.jsonl has a line per 10 steps"
    );
    let o = sae(&["eval", "--sae", p(&out), "--store", p(&store), "--json"]);
    ok(&o, "sae eval");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    eprintln!("{arch}: {v}");
    v
}

fn num(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

#[test]
fn topk_recovers_the_true_features() {
    let v = train_eval("topk", "500", "4e-3", &["--k", "5"]);
    assert!(num(&v, "mmcs") >= 0.99, "{v}");
    assert!(num(&v, "recovered_frac") >= 0.97, "{v}");
    assert!(num(&v, "dead_frac") <= 0.02, "{v}");
    assert!((num(&v, "l0") - 5.0).abs() < 0.5, "{v}");
}

#[test]
fn batchtopk_recovers_the_true_features() {
    // BatchTopK learns more slowly than TopK at the same lr (the batch-wide competition leaves
    // latents dead early and AuxK revives them): a higher peak lr makes up for it, 4e-3 in the
    // README's full-size run at batch 4096, 8e-3 here at batch 1024 (mmcs 0.993; 0.975 at 4e-3).
    let v = train_eval("batchtopk", "1000", "8e-3", &["--k", "5"]);
    assert!(num(&v, "mmcs") >= 0.98, "{v}");
    assert!(num(&v, "recovered_frac") >= 0.95, "{v}");
    // Saved as JumpReLU with the EMA threshold: inference L0 stays near the training k.
    assert!(num(&v, "l0") > 3.0 && num(&v, "l0") < 7.0, "{v}");
}

#[test]
fn relu_l1_recovers_the_true_features() {
    let v = train_eval("relu-l1", "500", "4e-3", &[]);
    assert!(num(&v, "mmcs") >= 0.98, "{v}");
}

#[test]
fn jumprelu_recovers_the_true_features() {
    // --k sets the target L0 of the quadratic penalty. With the straight-through estimator
    // reaching the pre-activations (the default) it recovers the features like the TopK family
    // and meets TopK's thresholds (measured at 1500 steps: mmcs 0.994, recovered 0.992, L0 3.26,
    // dead 0.037; at 1000 steps 0.990 / 0.973; with the threshold-only estimator 0.932 / 0.805
    // at 1000).
    let v = train_eval("jumprelu", "1500", "6e-3", &["--k", "3"]);
    assert!(num(&v, "mmcs") >= 0.99, "{v}");
    assert!(num(&v, "recovered_frac") >= 0.97, "{v}");
    assert!(num(&v, "l0") > 2.5 && num(&v, "l0") < 4.0, "{v}");
    assert!(num(&v, "dead_frac") <= 0.05, "{v}");
}

/// Asserts a failed run with exactly one `error:` line containing `needle`, and no panic.
fn fails_with(o: &Output, needle: &str) {
    let err = common::one_line_error(o);
    assert!(err.contains(needle), "{err}");
}

#[test]
fn bad_input_gets_one_clear_error_line() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let o = sae(&[
        "synth",
        "--features",
        "16",
        "--dim",
        "8",
        "--firing-prob",
        "0.1",
        "--samples",
        "2000",
        "--out",
        p(&store),
    ]);
    ok(&o, "sae synth");
    let out = tmp.path().join("out");
    let s = p(&store);
    let missing = tmp.path().join("nope");
    fails_with(
        &sae(&["train", "--store", p(&missing), "--out", p(&out)]),
        "no activation store",
    );
    fails_with(
        &sae(&[
            "train",
            "--store",
            s,
            "--out",
            p(&out),
            "--k",
            "65",
            "--d-sae",
            "64",
        ]),
        "k = 65 must lie in 1..=d_sae (64)",
    );
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "steps = 3\nlearning_rate = 0.1\n").unwrap();
    fails_with(
        &sae(&["train", "--store", s, "--out", p(&out), "--config", p(&cfg)]),
        "unknown field `learning_rate`",
    );
    std::fs::write(&cfg, "[arch]\nkind = \"topk\"\nk = 4\nkk = 3\n").unwrap();
    fails_with(
        &sae(&["train", "--store", s, "--out", p(&out), "--config", p(&cfg)]),
        "unknown field `kk`",
    );
    // Output below a regular file cannot be created.
    let file = tmp.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let below = file.join("sae");
    fails_with(
        &sae(&["train", "--store", s, "--out", p(&below), "--steps", "2"]),
        "file",
    );
    assert!(!out.exists(), "failed runs leave no output folder");
}

#[test]
fn non_finite_activations_are_named_by_shard_and_row() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let spec = StoreSpec {
        d: 4,
        dtype: DType::F32,
        shard_rows: 100,
        source: Source::Synthetic(SynthSource {
            features: 4,
            dim: 4,
            firing_prob: 0.5,
            zipf_exponent: None,
            correlated_groups: None,
            samples: 300,
            seed: 0,
            magnitude: "uniform(0,1)".into(),
        }),
        with_token_ids: false,
        with_doc_ids: false,
        with_positions: false,
    };
    let mut w = StoreWriter::create(&store, spec).unwrap();
    let mut acts: Vec<f32> = (0..300 * 4).map(|i| (i % 7) as f32 * 0.1).collect();
    // The writer refuses NaN, so plant a marker value and overwrite it with NaN on disk.
    let marker = 12345.678f32;
    acts[(150 * 4) + 2] = marker;
    let batch = RowBatch {
        acts: &acts,
        token_ids: None,
        doc_ids: None,
        positions: None,
    };
    w.push(batch, None).unwrap();
    w.finish(10).unwrap();
    let mut planted = 0;
    for entry in std::fs::read_dir(&store).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        let m = marker.to_le_bytes();
        if let Some(i) = bytes.windows(4).position(|w| w == m) {
            bytes[i..i + 4].copy_from_slice(&f32::NAN.to_le_bytes());
            std::fs::write(&path, bytes).unwrap();
            planted += 1;
        }
    }
    assert_eq!(planted, 1, "the marker sits in exactly one shard");
    let out = tmp.path().join("out");
    let o = sae(&[
        "train",
        "--store",
        p(&store),
        "--out",
        p(&out),
        "--steps",
        "5",
        "--batch",
        "32",
        "--d-sae",
        "8",
        "--k",
        "2",
    ]);
    fails_with(&o, "non-finite");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("shard-00000") && err.contains("row 150"),
        "{err}"
    );
}
