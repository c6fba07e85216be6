//! `sae eval` on every SAE of tests/fixtures/interop gives the FVU and L0 the library computed on
//! the same rows (reference.json: SAELens' ExplainedVarianceCalculator, 1 - R^2; sparsify's own
//! forward `fvu`), to 1e-5 relative. The rows (`x`, and a transcoder's targets `y`) reach the
//! stores through `sae import`, with every row held out.

mod common;

use std::path::{Path, PathBuf};

use common::sae;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/interop")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run(args: &[&str]) -> String {
    let out = sae(args);
    assert!(
        out.status.success(),
        "sae {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Imports tensor `key` of `dir`/reference.safetensors as a store of held-out rows.
fn store(dir: &Path, key: &str, out: &Path) {
    let reference = dir.join("reference.safetensors");
    run(&[
        "import",
        "--input",
        s(&reference),
        "--key",
        key,
        "--out",
        s(out),
        "--eval-frac",
        "1",
    ]);
}

/// Evaluates the SAE `parent` (+ `hook`) on its reference rows; compares with reference.json.
fn check(tmp: &Path, parent: &Path, hook: Option<&str>) {
    let dir = hook.map_or(parent.to_path_buf(), |h| parent.join(h));
    let name = dir
        .strip_prefix(root())
        .unwrap()
        .display()
        .to_string()
        .replace('/', "_");
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let x = tmp.join(format!("{name}-x"));
    store(&dir, "x", &x);
    let mut args = vec!["eval", "--sae", s(parent), "--store", s(&x), "--json"];
    if let Some(h) = hook {
        args.extend(["--hook", h]);
    }
    let y = tmp.join(format!("{name}-y"));
    let reference =
        sae_model::weights::WeightFile::read(&dir.join("reference.safetensors")).unwrap();
    if reference.has("y") {
        store(&dir, "y", &y);
        args.extend(["--target", s(&y)]);
    }
    let m: serde_json::Value = serde_json::from_str(&run(&args)).unwrap();
    for key in ["fvu", "l0"] {
        let (ours, theirs) = (m[key].as_f64().unwrap(), info[key].as_f64().unwrap());
        assert!(
            (ours - theirs).abs() <= 1e-5 * theirs.abs().max(1.0),
            "{name}: {key} ours {ours}, {} {theirs}",
            info["library"]
        );
    }
}

fn folders(sub: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("reference.json").exists())
        .collect();
    v.sort();
    v
}

#[test]
fn saelens_fixtures_evaluate_to_saelens_fvu() {
    let tmp = tempfile::tempdir().unwrap();
    let all = folders("saelens");
    assert!(all.len() >= 20, "{all:?}");
    for dir in all {
        check(tmp.path(), &dir, None);
    }
}

#[test]
fn sparsify_fixtures_evaluate_to_sparsify_fvu() {
    let tmp = tempfile::tempdir().unwrap();
    let all = folders("sparsify");
    assert_eq!(all.len(), 5, "{all:?}");
    for dir in all {
        check(tmp.path(), &dir, None);
    }
    let multi = root().join("sparsify/multi");
    check(tmp.path(), &multi, Some("layers.0"));
    check(tmp.path(), &multi, Some("layers.1.mlp"));
}

#[test]
fn our_saes_evaluate_to_the_fvu_saelens_computes_on_them() {
    let tmp = tempfile::tempdir().unwrap();
    for dir in folders("ours") {
        check(tmp.path(), &dir, None);
    }
}

#[test]
fn a_transcoder_without_its_target_store_is_one_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = root().join("saelens/transcoder");
    let x = tmp.path().join("x");
    store(&dir, "x", &x);
    let out = sae(&["eval", "--sae", s(&dir), "--store", s(&x)]);
    assert!(!out.status.success());
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("transcoder") && msg.contains("target"),
        "{msg}"
    );
    // The input store as the target: the widths disagree (16 vs the output's 12).
    let out = sae(&[
        "eval",
        "--sae",
        s(&dir),
        "--store",
        s(&x),
        "--target",
        s(&x),
    ]);
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && msg.contains("width 16") && msg.contains("12"),
        "{msg}"
    );
    let out = sae(&[
        "eval",
        "--sae",
        s(&root().join("sparsify/multi")),
        "--store",
        s(&x),
    ]);
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && msg.contains("--hook"), "{msg}");
}
