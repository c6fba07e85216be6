//! End to end: transcoders (`sae synth` twice -> `sae train --target-store` -> `sae eval --target`).
//!
//! The synthetic pair: `sae synth` draws each row's firing features and magnitudes a (sparse,
//! non-negative) from (seed, shard) alone and the feature directions from (seed, dim), so two
//! stores with the same settings but widths 64 and 48 hold x = a U and y = a V for the same a:
//! y is a known sparse map of x (y = V^T h(x), h(x) = a the sparse code of x over the input
//! directions U). A transcoder that learns the map has decoder rows along the output directions V:
//! the test asserts mmcs >= 0.95 of V (the target store's ground truth, one best-matching decoder
//! row per true direction) as `sae eval` reports it, and checks eval's FVU against the target
//! with a computation of its own from the saved transcoder's forward pass.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use common::{ok, one_line_error, s as p, sae};
use sae_model::Sae;
use sae_store::{Split, Store};

fn synth(dir: &Path, dim: &str, samples: &str, features: &str) {
    ok(sae(&[
        "synth",
        "--features",
        features,
        "--dim",
        dim,
        "--firing-prob",
        "0.01",
        "--samples",
        samples,
        "--eval-frac",
        "0.15",
        "--shard-rows",
        "16384",
        "--seed",
        "1",
        "--out",
        p(dir),
    ]));
}

fn num(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// FVU of the saved transcoder on the held-out rows, from its forward pass: sum ||y - y_hat||^2
/// over sum ||y - mean(y)||^2, in f64.
fn fvu_by_hand(sae_dir: &Path, x_store: &Path, y_store: &Path) -> f64 {
    let sae = Sae::load(sae_dir).unwrap();
    let read = |dir: &Path| -> (Vec<f32>, usize) {
        let s = Store::open(dir).unwrap();
        let rows: Vec<f32> = s
            .chunks(Split::Eval)
            .flat_map(|c| c.unwrap().acts)
            .collect();
        (rows, s.d())
    };
    let ((x, dx), (y, dy)) = (read(x_store), read(y_store));
    let n = x.len() / dx;
    let xt = Tensor::from_slice(&x, (n, dx), &Device::Cpu).unwrap();
    let (_, out) = sae.forward(&xt).unwrap();
    let yh = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let mut mean = vec![0f64; dy];
    for r in y.chunks(dy) {
        mean.iter_mut()
            .zip(r)
            .for_each(|(m, v)| *m += *v as f64 / n as f64);
    }
    let (mut sse, mut var) = (0f64, 0f64);
    for (r, h) in y.chunks(dy).zip(yh.chunks(dy)) {
        for ((v, w), m) in r.iter().zip(h).zip(&mean) {
            sse += (*v as f64 - *w as f64).powi(2);
            var += (*v as f64 - m).powi(2);
        }
    }
    sse / var
}

fn train_args<'a>(x: &'a Path, y: &'a Path, out: &'a Path, steps: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--store",
        p(x),
        "--target-store",
        p(y),
        "--out",
        p(out),
        "--arch",
        "batchtopk",
        "--k",
        "5",
        "--d-sae",
        "512",
        "--steps",
        steps,
        "--batch",
        "1024",
        "--lr",
        "8e-3",
    ]
}

#[test]
fn transcoder_recovers_the_maps_output_features() {
    let tmp = tempfile::tempdir().unwrap();
    let (x, y) = (tmp.path().join("x"), tmp.path().join("y"));
    synth(&x, "64", "200000", "256");
    synth(&y, "48", "200000", "256");
    let out = tmp.path().join("tc");
    ok(sae(&train_args(&x, &y, &out, "1000")));
    let cfg = std::fs::read_to_string(out.join("cfg.json")).unwrap();
    assert!(cfg.contains("\"jumprelu_transcoder\""), "{cfg}");
    let o = ok(sae(&[
        "eval",
        "--sae",
        p(&out),
        "--store",
        p(&x),
        "--target-store",
        p(&y),
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    eprintln!("transcoder: {v}");
    assert!(num(&v, "mmcs") >= 0.95, "{v}");
    // Measured 0.112 (mmcs 0.990, recovered 1.0): the encoder infers the 256 sparse codes from 64
    // dims of superposition, which bounds how well any transcoder predicts y.
    assert!(num(&v, "fvu") < 0.2, "{v}");
    let by_hand = fvu_by_hand(&out, &x, &y);
    assert!(
        (num(&v, "fvu") - by_hand).abs() <= 1e-4 * by_hand.max(1e-3),
        "eval fvu {} vs {by_hand}",
        num(&v, "fvu")
    );
}

/// JumpReLU (target L0 5) recovers the map's features too, saved as SAELens' jumprelu_transcoder
/// (measured mmcs 0.981, recovered 1.0, fvu 0.163); ReLU-L1 trains and saves as `transcoder`.
#[test]
fn jumprelu_and_relu_l1_transcoders_train_and_save() {
    let tmp = tempfile::tempdir().unwrap();
    let (x, y) = (tmp.path().join("x"), tmp.path().join("y"));
    synth(&x, "64", "200000", "256");
    synth(&y, "48", "200000", "256");
    for (arch, steps, saved) in [
        ("jumprelu", "1000", "jumprelu_transcoder"),
        ("relu-l1", "100", "transcoder"),
    ] {
        let out = tmp.path().join(arch);
        let mut args = train_args(&x, &y, &out, steps);
        args[8] = arch;
        if arch == "relu-l1" {
            args.drain(9..11); // no --k
        }
        ok(sae(&args));
        let cfg = std::fs::read_to_string(out.join("cfg.json")).unwrap();
        assert!(cfg.contains(&format!("\"{saved}\"")), "{cfg}");
        let o = ok(sae(&[
            "eval",
            "--sae",
            p(&out),
            "--store",
            p(&x),
            "--target-store",
            p(&y),
            "--json",
        ]));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        eprintln!("{arch}: {v}");
        if arch == "jumprelu" {
            assert!(num(&v, "mmcs") >= 0.95, "{v}");
        }
        let by_hand = fvu_by_hand(&out, &x, &y);
        assert!(
            (num(&v, "fvu") - by_hand).abs() <= 1e-4 * by_hand.max(1e-3),
            "{arch}: {v}"
        );
    }
}

#[test]
fn misaligned_or_unsupported_pairs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (x, y, z) = (
        tmp.path().join("x"),
        tmp.path().join("y"),
        tmp.path().join("z"),
    );
    synth(&x, "16", "40000", "64");
    synth(&y, "12", "40000", "64");
    synth(&z, "12", "30000", "64");
    let out = tmp.path().join("tc");
    let e = one_line_error(&sae(&train_args(&x, &z, &out, "10")));
    assert!(
        e.contains("not row-aligned") && e.contains("40000 rows vs 30000"),
        "{e}"
    );
    // sparsify, where a TopK transcoder is saved, holds transcoders of the input's width only.
    let mut args = train_args(&x, &y, &out, "10");
    args[8] = "topk";
    let e = one_line_error(&sae(&args));
    assert!(
        e.contains("sparsify") && e.contains("width 12 is not the input's 16"),
        "{e}"
    );
    // --skip belongs to a transcoder (clap's usage error).
    let o = sae(&["train", "--store", p(&x), "--out", p(&out), "--skip"]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("--target-store"), "{e}");
}

/// Matryoshka BatchTopK learns the map as a transcoder, saved as SAELens' jumprelu_transcoder with
/// its prefix widths, and `sae eval` reports each prefix's FVU against the target; a TopK transcoder (input and target of one width: here the same store) trains, saves in
/// sparsify's layout and evaluates. Both FVUs match a computation by hand.
#[test]
fn matryoshka_and_topk_transcoders_train_save_and_evaluate() {
    let tmp = tempfile::tempdir().unwrap();
    let (x, y) = (tmp.path().join("x"), tmp.path().join("y"));
    synth(&x, "64", "200000", "256");
    synth(&y, "48", "200000", "256");
    for (arch, target) in [("matryoshka-batchtopk", &y), ("topk", &x)] {
        let out = tmp.path().join(arch);
        let mut args = train_args(&x, target, &out, "1000");
        args[8] = arch;
        if arch == "matryoshka-batchtopk" {
            // Three nested prefixes (the default has two), so the per-prefix order is tested.
            args.extend(["--group-fractions", "0.0625,0.1875,0.75"]);
        }
        ok(sae(&args));
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("cfg.json")).unwrap()).unwrap();
        let o = ok(sae(&[
            "eval",
            "--sae",
            p(&out),
            "--store",
            p(&x),
            "--target-store",
            p(target),
            "--json",
        ]));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        eprintln!("{arch}: {v}");
        if arch == "topk" {
            assert_eq!(cfg["transcode"], true, "{cfg}");
            assert!(out.join("sae.safetensors").exists());
            // The sparsify folder counts as a finished run: a second run into it is refused.
            let e = one_line_error(&sae(&args));
            assert!(e.contains("already holds a trained SAE"), "{e}");
        } else {
            assert_eq!(cfg["architecture"], "jumprelu_transcoder", "{cfg}");
            assert!(cfg["metadata"]["matryoshka_widths"].is_array(), "{cfg}");
            // Prefixes of 32 / 128 / 512 latents; with equal weights throughout (before the default
            // weight ramp) mmcs 0.919, fvu 0.837 / 0.513 / 0.133; with the ramp 0.951, 0.861 / 0.551 / 0.120.
            assert!(num(&v, "mmcs") >= 0.88 && num(&v, "fvu") < 0.2, "{v}");
            let prefixes = v["prefixes"].as_array().expect("per-prefix metrics");
            let fvus: Vec<f64> = prefixes.iter().map(|p| num(p, "fvu")).collect();
            assert!(
                fvus.len() == 3 && fvus.windows(2).all(|w| w[0] > w[1]),
                "wider prefixes predict y better: {v}"
            );
        }
        let by_hand = fvu_by_hand(&out, &x, target);
        assert!(
            (num(&v, "fvu") - by_hand).abs() <= 1e-4 * by_hand.max(1e-3),
            "{arch}: {v}"
        );
    }
}

/// A skip transcoder killed after its first checkpoint and resumed ends bit-identical to an
/// uninterrupted run (the W_skip parameters and their Adam moments are in the checkpoint).
#[test]
fn killed_and_resumed_skip_transcoder_matches_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (x, y) = (tmp.path().join("x"), tmp.path().join("y"));
    synth(&x, "32", "60000", "128");
    synth(&y, "24", "60000", "128");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let args = |out: &Path| -> Vec<String> {
        let mut v: Vec<String> = train_args(&x, &y, out, "1500")
            .into_iter()
            .map(String::from)
            .collect();
        v[12] = "256".into(); // --d-sae
        v[16] = "512".into(); // --batch
        v.extend(["--skip", "--seed", "7", "--checkpoint-every", "40"].map(String::from));
        v
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_sae"))
        .args(args(&a))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ckpt = a.join("checkpoint").join("checkpoint.safetensors");
    let t0 = Instant::now();
    while !ckpt.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !a.join("sae_weights.safetensors").exists(),
        "the run finished before it was killed; the test proves nothing"
    );
    let mut resume = args(&a);
    resume.push("--resume".into());
    let refs: Vec<&str> = resume.iter().map(String::as_str).collect();
    ok(sae(&refs));
    let refs: Vec<String> = args(&b);
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    ok(sae(&refs));
    let wa = std::fs::read(a.join("sae_weights.safetensors")).unwrap();
    let wb = std::fs::read(b.join("sae_weights.safetensors")).unwrap();
    assert!(
        wa == wb,
        "resumed skip transcoder differs from the uninterrupted run"
    );
    let cfg = std::fs::read_to_string(a.join("cfg.json")).unwrap();
    assert!(cfg.contains("\"jumprelu_skip_transcoder\""), "{cfg}");
}
