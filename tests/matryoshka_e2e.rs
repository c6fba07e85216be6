//! End to end: Matryoshka BatchTopK on synthetic data with known ground truth (`sae synth` ->
//! `sae train` -> `sae eval --json`): it recovers the true features, its nested prefixes
//! reconstruct on their own (per-prefix FVU falls with width), and on hierarchical features its
//! absorption score is far below BatchTopK's at the same L0 and steps.

mod common;

use std::path::Path;

use common::{ok, s as p, sae};

/// The e2e size of tests/train_e2e.rs: 512 latents, 1000 steps of 1024 rows at peak lr 8e-3.
const SMALL: [&str; 8] = [
    "--d-sae", "512", "--steps", "1000", "--batch", "1024", "--lr", "8e-3",
];
/// README's superposition benchmark: 1024 latents, 1000 steps of 4096 rows at peak lr 4e-3.
const README: [&str; 8] = [
    "--d-sae", "1024", "--steps", "1000", "--batch", "4096", "--lr", "4e-3",
];

/// Trains an SAE with `size` and `extra` flags and returns `sae eval --json`.
fn train_eval(store: &Path, out: &Path, size: &[&str], extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["train", "--store", p(store), "--out", p(out)];
    args.extend_from_slice(size);
    args.extend_from_slice(extra);
    ok(sae(&args));
    let o = ok(sae(&[
        "eval",
        "--sae",
        p(out),
        "--store",
        p(store),
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    eprintln!("{}: {v}", out.display());
    v
}

fn num(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

#[test]
fn matryoshka_recovers_the_features_and_its_prefixes_reconstruct() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, out) = (tmp.path().join("store"), tmp.path().join("sae"));
    // README's benchmark (512 equally frequent features in 128 dims): at the e2e size of
    // tests/train_e2e.rs (256 features, 64 dims, k 5 over a true L0 of 2.6) the shipped
    // groups reach only mmcs 0.93 / recovered 0.72 (README "Matryoshka BatchTopK").
    ok(sae(&[
        "synth",
        "--features",
        "512",
        "--dim",
        "128",
        "--firing-prob",
        "0.01",
        "--samples",
        "500000",
        "--seed",
        "0",
        "--out",
        p(&store),
    ]));
    // The default groups and weights (one inner prefix of 1/32 of the latents, weight 1 ramped
    // to 0.2 between 50% and 80% of the steps); measured mmcs 0.9986, recovered 0.996.
    let v = train_eval(
        &store,
        &out,
        &README,
        &["--arch", "matryoshka-batchtopk", "--k", "5"],
    );
    // The README's targets, which BatchTopK meets (0.9993 / 1.000).
    assert!(num(&v, "mmcs") >= 0.99, "{v}");
    assert!(num(&v, "recovered_frac") >= 0.97, "{v}");
    assert!(num(&v, "l0") > 4.0 && num(&v, "l0") < 6.0, "{v}");
    let prefixes = v["prefixes"].as_array().expect("per-prefix metrics");
    let widths: Vec<u64> = prefixes
        .iter()
        .map(|e| e["width"].as_u64().unwrap())
        .collect();
    assert_eq!(widths, [32, 1024], "{v}");
    for pair in prefixes.windows(2) {
        assert!(num(&pair[1], "fvu") < num(&pair[0], "fvu"), "{v}");
        assert!(num(&pair[1], "l0") > num(&pair[0], "l0"), "{v}");
    }
    let full = prefixes.last().unwrap();
    assert!((num(full, "fvu") - num(&v, "fvu")).abs() < 1e-9, "{v}");
    assert!((num(full, "l0") - num(&v, "l0")).abs() < 1e-9, "{v}");
    // The widths come from the saved SAE's metadata.
    let cfg_json = std::fs::read_to_string(out.join("cfg.json")).unwrap();
    assert!(cfg_json.contains("matryoshka_widths"), "{cfg_json}");
}

#[test]
fn matryoshka_absorbs_less_than_batchtopk() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    // The first 16 features are parents of 4 children each.
    common::synth_benchmark(&store, &["--parents", "16", "--children", "4"]);
    // k = 2 under the true L0 (3.2): the budget makes a child's latent that carries its parent's
    // direction worth it (measured: batchtopk 0.45, topk 0.52, matryoshka with the default
    // groups and weight ramp 0.09).
    let btk = train_eval(
        &store,
        &tmp.path().join("batchtopk"),
        &SMALL,
        &["--arch", "batchtopk", "--k", "2"],
    );
    let mat = train_eval(
        &store,
        &tmp.path().join("matryoshka"),
        &SMALL,
        &["--arch", "matryoshka-batchtopk", "--k", "2"],
    );
    let score = |v: &serde_json::Value| num(&v["absorption"], "mean");
    let (a_btk, a_mat) = (score(&btk), score(&mat));
    println!("absorption: batchtopk {a_btk:.4}, matryoshka-batchtopk {a_mat:.4}");
    assert!(
        (num(&btk, "l0") - num(&mat, "l0")).abs() < 0.3,
        "{btk} {mat}"
    );
    assert!(a_btk > 0.2, "batchtopk absorbs at this k: {btk}");
    assert!(a_mat < 0.5 * a_btk, "{a_mat} vs {a_btk}");
    assert!(a_mat < 0.2, "{mat}");
    let parents = mat["absorption"]["parents"].as_array().unwrap();
    assert_eq!(parents.len(), 16);
    assert!(parents.iter().all(|e| num(e, "rows") > 1000.0), "{mat}");
}
