//! The reverse interop check of transcoders: transcoders that `sae train --target-store` wrote,
//! loaded by the library whose layout they are in (fixtures made by
//! scripts/make-transcoder-interop-fixtures.py in tests/fixtures/interop/ours/): BatchTopK and
//! Matryoshka BatchTopK (skip) transcoders by SAELens 6.54 (SAE.load_from_disk, as
//! JumpReLU(Skip)Transcoder), TopK (skip) transcoders by sparsify 1.3.3 (SparseCoder.load_from_disk,
//! `transcode`, `skip_connection`; SAELens has no TopK transcoder). Each gives the library's encode /
//! decode / forward to 1e-4 (|ours - theirs| <= 1e-4 * max(1, |theirs|)) and its FVU against the
//! target; SAELens reads the output hook where we write it (metadata.hook_name_out, given a version
//! marker) and Matryoshka's prefix widths; our loader reads the output hook back from a sparsify
//! folder; the fixture's cfg.json is what our writer writes today.

use std::path::PathBuf;

use candle_core::Tensor;
use sae_model::weights::WeightFile;
use sae_model::Sae;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/interop/ours")
        .join(rel)
}

fn matrix(file: &WeightFile, name: &str) -> Tensor {
    let shape = file.shape(name).unwrap();
    file.tensor(name, &shape).unwrap()
}

fn assert_close(what: &str, ours: &Tensor, theirs: &Tensor) {
    assert_eq!(ours.dims(), theirs.dims(), "{what}: shapes");
    let a = ours.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-4 * y.abs().max(1.0),
            "{what}[{i}]: ours {x}, SAELens' {y}"
        );
    }
}

/// FVU of `out` against `y` (sum of squared errors over the total variance of y), in f64.
fn fvu(out: &Tensor, y: &Tensor) -> f64 {
    let d = y.dims()[1];
    let a = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let n = b.len() / d;
    let mut mean = vec![0f64; d];
    for r in b.chunks(d) {
        mean.iter_mut()
            .zip(r)
            .for_each(|(m, v)| *m += *v as f64 / n as f64);
    }
    let sse: f64 = a
        .iter()
        .zip(&b)
        .map(|(p, t)| (*p as f64 - *t as f64).powi(2))
        .sum();
    let var: f64 = b
        .chunks(d)
        .flat_map(|r| r.iter().zip(&mean).map(|(v, m)| (*v as f64 - m).powi(2)))
        .sum();
    sse / var
}

/// Which library loaded a fixture, as what.
struct Loaded {
    library: &'static str,
    class: &'static str,
    skip: bool,
}

fn check(name: &str, want: Loaded) {
    let dir = fixture(name);
    let sae = Sae::load(&dir).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        sae.cfg.is_transcoder() && sae.w_skip.is_some() == want.skip,
        "{name}"
    );
    let file = WeightFile::read(&dir.join("reference.safetensors")).unwrap();
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    assert_eq!(info["library"], want.library, "{info}");
    assert_eq!(info["class"], want.class, "{info}");
    assert_eq!(
        info["sae_format_version"],
        sae_model::saelens::FORMAT_VERSION,
        "the fixture was made with another format version: rerun the script"
    );
    let hook_out = serde_json::json!("blocks.3.hook_mlp_out");
    if want.library == "sae_lens" {
        // SAELens reads the output hook where our writer puts it (metadata.hook_name_out, checked
        // on a copy with one set): our metadata carries sae_lens_version, without which SAELens
        // 6.54 reads the cfg.json as the pre-6.0 layout and drops the metadata.
        assert_eq!(info["hook_out_read"], hook_out, "{info}");
    } else {
        // sparsify ignores our metadata; our loader reads it back (the pair was imported as an
        // MLP's input and output hooks).
        assert_eq!(sae.cfg.metadata.extra.get("hook_name_out"), Some(&hook_out));
        assert_eq!(
            (&info["transcode"], &info["skip_connection"]),
            (&true.into(), &want.skip.into())
        );
    }
    if let Some(w) = info.get("matryoshka_widths") {
        assert_eq!(
            sae.cfg.metadata.extra.get("matryoshka_widths"),
            Some(w),
            "{name}"
        );
    }
    let (x, y) = (matrix(&file, "x"), matrix(&file, "y"));
    let acts = sae.encode(&x).unwrap();
    assert_close(&format!("{name} encode"), &acts, &matrix(&file, "acts"));
    let decoded = sae.decode_for_input(&matrix(&file, "acts"), &x).unwrap();
    assert_close(
        &format!("{name} decode"),
        &decoded,
        &matrix(&file, "decode"),
    );
    let (_, out) = sae.forward(&x).unwrap();
    assert_close(&format!("{name} forward"), &out, &matrix(&file, "out"));
    let (ours, theirs) = (fvu(&out, &y), info["fvu"].as_f64().unwrap());
    assert!(
        (ours - theirs).abs() <= 1e-4 * theirs.max(1e-3),
        "{name}: fvu {ours} vs {} {theirs}",
        want.library
    );
    // The folder we committed is what our writer writes today.
    let tmp = tempfile::tempdir().unwrap();
    sae.save(tmp.path(), None).unwrap();
    let read = |p: PathBuf| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    assert_eq!(
        read(tmp.path().join("cfg.json")),
        read(dir.join("cfg.json")),
        "{name}: cfg.json as we write it now"
    );
}

fn saelens(class: &'static str, skip: bool) -> Loaded {
    Loaded {
        library: "sae_lens",
        class,
        skip,
    }
}

fn sparsify(skip: bool) -> Loaded {
    Loaded {
        library: "sparsify",
        class: "SparseCoder",
        skip,
    }
}

#[test]
fn ours_transcoder_read_by_saelens() {
    check("transcoder", saelens("JumpReLUTranscoder", false));
}

#[test]
fn ours_skip_transcoder_read_by_saelens() {
    check("skip-transcoder", saelens("JumpReLUSkipTranscoder", true));
}

#[test]
fn ours_matryoshka_transcoders_read_by_saelens() {
    check(
        "matryoshka-transcoder",
        saelens("JumpReLUTranscoder", false),
    );
    check(
        "matryoshka-skip-transcoder",
        saelens("JumpReLUSkipTranscoder", true),
    );
}

#[test]
fn ours_topk_transcoders_read_by_sparsify() {
    check("topk-transcoder", sparsify(false));
    check("topk-skip-transcoder", sparsify(true));
}
