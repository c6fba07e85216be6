//! End to end: `sae synth` writes a valid store with ground truth; `sae eval` reports the metrics
//! and fails with one clear line on bad input.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use candle_core::{Device, Tensor};
use common::{s as p, sae as sae_cmd};
use sae_model::{Activation, Sae, SaeConfig};
use sae_store::{Source, Split, Store};

/// Runs `sae synth` on a small problem (64 features, 16 dims) into `out`.
fn synth(out: &Path, seed: &str) {
    let o = sae_cmd(&[
        "synth",
        "--features",
        "64",
        "--dim",
        "16",
        "--firing-prob",
        "0.05",
        "--samples",
        "5000",
        "--seed",
        seed,
        "--shard-rows",
        "1000",
        "--out",
        p(out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Asserts a failure with exactly one stderr line containing every one of `needles`.
fn assert_one_line_error(o: &Output, needles: &[&str]) {
    let err = common::one_line_error(o);
    for n in needles {
        assert!(err.contains(n), "{err:?} lacks {n:?}");
    }
}

/// The ground truth features [n, d] of a synthetic store.
fn ground_truth(store: &Path) -> (Vec<f32>, usize, usize) {
    let t = sae_model::load_ground_truth(&store.join("ground_truth.safetensors"), 16).unwrap();
    let (n, d) = t.dims2().unwrap();
    (t.flatten_all().unwrap().to_vec1().unwrap(), n, d)
}

/// A ReLU SAE whose decoder rows are exactly the ground-truth features (encoder = decoder^T).
fn oracle_sae(store: &Path, dir: &Path) -> PathBuf {
    let (gt, n, d) = ground_truth(store);
    let w_dec = Tensor::from_vec(gt, (n, d), &Device::Cpu).unwrap();
    let w_enc = w_dec.t().unwrap().contiguous().unwrap();
    let zeros = |k| Tensor::zeros(k, candle_core::DType::F32, &Device::Cpu).unwrap();
    let sae = Sae::new(
        SaeConfig::new(d, n, Activation::Relu),
        w_enc,
        zeros(n),
        w_dec,
        zeros(d),
        None,
    )
    .unwrap();
    let out = dir.join("oracle");
    sae.save(&out, None).unwrap();
    out
}

#[test]
fn synth_writes_a_valid_deterministic_store_with_ground_truth() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    synth(&a, "7");
    synth(&b, "7");
    synth(&c, "8");
    let store = Store::open(&a).unwrap();
    let m = store.manifest();
    assert_eq!(
        (m.d, m.rows, m.eval_rows, m.shards.len()),
        (16, 5000, 250, 5)
    );
    match &m.source {
        Source::Synthetic(s) => {
            assert_eq!((s.features, s.dim, s.samples, s.seed), (64, 16, 5000, 7));
            assert_eq!(s.firing_prob, 0.05);
        }
        other => panic!("unexpected source {other:?}"),
    }
    let (gt, n, d) = ground_truth(&a);
    assert_eq!((n, d), (64, 16));
    for row in gt.chunks(d) {
        let norm: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "feature norm {norm}");
    }
    for shard in &m.shards {
        let read = |dir: &Path| std::fs::read(dir.join(&shard.file)).unwrap();
        assert_eq!(read(&a), read(&b), "same seed, different {}", shard.file);
        assert_ne!(read(&a), read(&c), "different seeds, same {}", shard.file);
    }
    // The eval split streams its 250 rows.
    let rows: usize = store.chunks(Split::Eval).map(|c| c.unwrap().rows).sum();
    assert_eq!(rows, 250);
    // A second synth into the same folder is refused without touching it.
    let o = sae_cmd(&[
        "synth",
        "--features",
        "64",
        "--dim",
        "16",
        "--firing-prob",
        "0.05",
        "--samples",
        "10",
        "--out",
        p(&a),
    ]);
    assert_one_line_error(&o, &["already holds"]);
    assert_eq!(Store::open(&a).unwrap().manifest().rows, 5000);
}

#[test]
fn eval_of_the_oracle_decoder_recovers_every_feature() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    synth(&store, "1");
    let sae = oracle_sae(&store, tmp.path());
    let o = sae_cmd(&["eval", "--sae", p(&sae), "--store", p(&store), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8(o.stdout).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "dead_frac",
            "dense_frac",
            "fvu",
            "l0",
            "l2_ratio",
            "mmcs",
            "mse",
            "recovered_frac"
        ]
    );
    assert!((v["mmcs"].as_f64().unwrap() - 1.0).abs() < 1e-5, "{v}");
    assert_eq!(v["recovered_frac"].as_f64().unwrap(), 1.0);
    // Without ground truth (an explicit file is needed then) the two keys are absent.
    std::fs::remove_file(store.join("ground_truth.safetensors")).unwrap();
    let o = sae_cmd(&["eval", "--sae", p(&sae), "--store", p(&store), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_object().unwrap().len(), 6, "{v}");
    // The readable table names every metric.
    let o = sae_cmd(&["eval", "--sae", p(&sae), "--store", p(&store)]);
    let table = String::from_utf8(o.stdout).unwrap();
    for k in ["mse", "fvu", "l0", "dead_frac", "dense_frac", "l2_ratio"] {
        assert!(table.contains(k), "{table}");
    }
}

#[test]
fn eval_errors_are_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    synth(&store, "2");
    let sae = oracle_sae(&store, tmp.path());
    let (s, st) = (p(&sae), p(&store));

    let missing = tmp.path().join("nothing");
    let o = sae_cmd(&["eval", "--sae", s, "--store", p(&missing)]);
    assert_one_line_error(&o, &["nothing", "manifest.json"]);

    let o = sae_cmd(&["eval", "--sae", p(&missing), "--store", st]);
    assert_one_line_error(&o, &["no SAE folder", "nothing"]);

    // An SAE of width 8 on a store of width 16.
    let zeros = |s: &[usize]| Tensor::zeros(s, candle_core::DType::F32, &Device::Cpu).unwrap();
    let narrow = tmp.path().join("narrow");
    Sae::new(
        SaeConfig::new(8, 4, Activation::Relu),
        zeros(&[8, 4]),
        zeros(&[4]),
        zeros(&[4, 8]),
        zeros(&[8]),
        None,
    )
    .unwrap()
    .save(&narrow, None)
    .unwrap();
    let o = sae_cmd(&["eval", "--sae", p(&narrow), "--store", st]);
    assert_one_line_error(&o, &["d = 16", "d_in = 8"]);

    // NaN in the last (eval) shard, row 900 of the shard.
    let nan_store = tmp.path().join("nan");
    synth(&nan_store, "2");
    let shard = nan_store.join("shard-00004.safetensors");
    let mut bytes = std::fs::read(&shard).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let meta: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header]).unwrap();
    let start = meta["acts"]["data_offsets"][0].as_u64().unwrap() as usize + 8 + header;
    let at = start + (900 * 16 + 3) * 4;
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&shard, &bytes).unwrap();
    let o = sae_cmd(&["eval", "--sae", s, "--store", p(&nan_store)]);
    assert_one_line_error(&o, &["shard-00004", "900"]);

    // A truncated shard.
    let shard = store.join("shard-00002.safetensors");
    let len = std::fs::metadata(&shard).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&shard)
        .unwrap();
    f.set_len(len - 100).unwrap();
    let o = sae_cmd(&["eval", "--sae", s, "--store", st]);
    assert_one_line_error(&o, &["shard-00002"]);
}
