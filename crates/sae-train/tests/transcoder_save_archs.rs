//! TopK and Matryoshka BatchTopK transcoders, trained and saved: a TopK (skip) transcoder in
//! sparsify's layout (cfg.json with `transcode` / `skip_connection` + sae.safetensors, SAELens
//! having no TopK transcoder class), a Matryoshka one as SAELens' jumprelu_(skip_)transcoder with
//! `matryoshka_widths` in its metadata; our loader reads each back with identical encode and
//! forward and the metadata (output hook, trained architecture) kept, and the folded weights act on
//! raw rows as the trained parameters act on scaled ones (computed here by hand). A TopK
//! transcoder between hooks of different widths, which sparsify cannot hold, is refused before
//! training.

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sae_model::{Sae, SaeMetadata};
use sae_train::{ArchConfig, ArchKind, Backend, TrainConfig, Trainer};

const D_IN: usize = 10;
const D_SAE: usize = 40;
const K: usize = 3;

/// `[x | y]` rows: x random, y (width `d_out`) a fixed nonlinear function of x at another scale.
fn rows(n: usize, d_out: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n * (D_IN + d_out));
    for _ in 0..n {
        let x: Vec<f32> = (0..D_IN).map(|_| rng.random_range(-2.0..3.0)).collect();
        out.extend_from_slice(&x);
        out.extend(
            (0..d_out).map(|j| 0.1 * (x[j % D_IN] - 0.5).max(0.0) + 0.05 * x[(j + 3) % D_IN]),
        );
    }
    out
}

fn config(arch: ArchConfig, skip: bool) -> TrainConfig {
    TrainConfig {
        arch,
        d_sae: Some(D_SAE),
        steps: 30,
        batch: 64,
        skip,
        ..TrainConfig::default()
    }
}

fn trained(arch: ArchConfig, skip: bool, d_out: usize) -> Trainer {
    let cfg = config(arch, skip);
    let mut res = cfg.resolve(D_IN).unwrap();
    res.d_out = Some(d_out);
    let mut t = Trainer::new(cfg, res, &rows(256, d_out, 1), Backend::Fast).unwrap();
    for s in 0..30 {
        let mut b = rows(64, d_out, 100 + s);
        t.step(&mut b).unwrap();
    }
    t
}

/// The trained parameters applied by hand to raw rows: TopK keeps each row's k largest positive
/// pre-activations, the others the ones above the global threshold.
fn by_hand(t: &Trainer, x: &[f32], topk: bool) -> Vec<f32> {
    let p = &t.state.params;
    let (c, co, thr) = (t.state.scale, t.state.target_scale, t.state.threshold);
    let d_out = p.d_out;
    let mut out = Vec::new();
    for xr in x.chunks(D_IN) {
        let xr: Vec<f64> = xr.iter().map(|v| (v * c) as f64).collect();
        let z: Vec<f64> = (0..D_SAE)
            .map(|j| {
                (0..D_IN)
                    .map(|i| xr[i] * p.w_enc[i * D_SAE + j] as f64)
                    .sum::<f64>()
                    + p.b_enc[j] as f64
            })
            .collect();
        let mut sorted = z.clone();
        sorted.sort_by(|a, b| b.partial_cmp(a).unwrap());
        let keep = |v: f64| match topk {
            true => v >= sorted[K - 1] && v > 0.0,
            false => v > thr as f64,
        };
        let mut acc: Vec<f64> = p.b_dec.iter().map(|b| *b as f64).collect();
        for (j, &zj) in z.iter().enumerate().filter(|(_, v)| keep(**v)) {
            for (k, a) in acc.iter_mut().enumerate() {
                *a += zj * p.w_dec[j * d_out + k] as f64;
            }
        }
        if let Some(w) = &p.w_skip {
            for (k, a) in acc.iter_mut().enumerate() {
                *a += (0..D_IN)
                    .map(|i| xr[i] * w[i * d_out + k] as f64)
                    .sum::<f64>();
            }
        }
        out.extend(acc.iter().map(|a| (a / co as f64) as f32));
    }
    out
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Saves `t`'s transcoder with an input and an output hook, loads it back and checks encode,
/// forward and the by-hand forward; returns the folder's cfg.json.
fn save_and_reload(t: &Trainer, topk: bool, what: &str) -> (serde_json::Value, tempfile::TempDir) {
    let mut meta = SaeMetadata {
        hook_name: Some("blocks.3.ln2.hook_normalized".into()),
        ..SaeMetadata::default()
    };
    meta.extra.insert(
        "hook_name_out".into(),
        serde_json::json!("blocks.3.hook_mlp_out"),
    );
    let sae = t.to_sae(meta).unwrap();
    let dir = tempfile::tempdir().unwrap();
    sae.save(dir.path(), Some(&[-1.0; D_SAE])).unwrap();
    let back = Sae::load(dir.path()).unwrap();
    assert!(back.cfg.is_transcoder(), "{what}");
    assert_eq!(
        back.w_skip.is_some(),
        t.state.params.w_skip.is_some(),
        "{what}"
    );
    // (The SAELens writer adds the version of the layout it writes.)
    let mut read = back.cfg.metadata.clone();
    read.extra.remove("sae_lens_version");
    assert_eq!(read, sae.cfg.metadata, "{what}: metadata");
    assert_eq!(
        sae_model::load_sparsity(dir.path(), D_SAE).unwrap(),
        Some(vec![-1.0; D_SAE])
    );
    let raw = rows(50, t.state.params.d_out, 7);
    let d_row = D_IN + t.state.params.d_out;
    let x: Vec<f32> = raw.chunks(d_row).flat_map(|r| r[..D_IN].to_vec()).collect();
    let xt = Tensor::from_slice(&x, (50, D_IN), &Device::Cpu).unwrap();
    let (f0, y0) = sae.forward(&xt).unwrap();
    let (f1, y1) = back.forward(&xt).unwrap();
    assert_eq!(flat(&f0), flat(&f1), "{what}: encode");
    assert_eq!(flat(&y0), flat(&y1), "{what}: forward");
    assert!(
        flat(&f1).iter().any(|v| *v > 0.0),
        "{what}: some latents fire"
    );
    let want = by_hand(t, &x, topk);
    let got = flat(&y1);
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = want
        .iter()
        .zip(&got)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        diff <= 1e-4 * scale,
        "{what}: folded forward off by {diff} (scale {scale})"
    );
    (read_json(&dir.path().join("cfg.json")), dir)
}

#[test]
fn topk_transcoders_save_in_sparsify_layout_and_load_back() {
    let topk = ArchConfig::default_for(ArchKind::TopK, Some(K));
    for skip in [false, true] {
        let t = trained(topk.clone(), skip, D_IN);
        let what = format!("topk skip {skip}");
        let (cfg, dir) = save_and_reload(&t, true, &what);
        assert!(dir.path().join("sae.safetensors").exists(), "{what}");
        assert!(
            !dir.path().join("sae_weights.safetensors").exists(),
            "{what}"
        );
        assert_eq!(cfg["transcode"], true, "{cfg}");
        assert_eq!(cfg["skip_connection"], skip, "{cfg}");
        assert_eq!(
            (cfg["d_in"].clone(), cfg["num_latents"].clone()),
            (D_IN.into(), D_SAE.into())
        );
        assert_eq!(
            (cfg["activation"].clone(), cfg["k"].clone()),
            ("topk".into(), K.into())
        );
        assert_eq!(
            cfg["metadata"]["hook_name_out"], "blocks.3.hook_mlp_out",
            "{cfg}"
        );
        assert_eq!(cfg["metadata"]["trained_arch"], "topk", "{cfg}");
    }
}

#[test]
fn topk_transcoder_between_hooks_of_different_widths_is_refused() {
    let cfg = config(ArchConfig::default_for(ArchKind::TopK, Some(K)), false);
    let mut res = cfg.resolve(D_IN).unwrap();
    res.d_out = Some(D_IN + 2);
    let e = Trainer::new(cfg, res, &rows(64, D_IN + 2, 1), Backend::Fast)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("sparsify") && e.contains("batchtopk"), "{e}");
}

#[test]
fn matryoshka_transcoders_save_as_saelens_jumprelu_transcoders() {
    let arch = ArchConfig::default_for(ArchKind::MatryoshkaBatchTopK, Some(K));
    for (skip, d_out) in [(false, 7), (true, 13)] {
        let t = trained(arch.clone(), skip, d_out);
        assert!(t.state.threshold > 0.0);
        let what = format!("matryoshka skip {skip}");
        let (cfg, _dir) = save_and_reload(&t, false, &what);
        let name = if skip {
            "jumprelu_skip_transcoder"
        } else {
            "jumprelu_transcoder"
        };
        assert_eq!(cfg["architecture"], name, "{cfg}");
        assert_eq!(
            (cfg["d_in"].clone(), cfg["d_out"].clone()),
            (D_IN.into(), d_out.into())
        );
        assert_eq!(
            cfg["metadata"]["trained_arch"], "matryoshka-batchtopk",
            "{cfg}"
        );
        let widths = cfg["metadata"]["matryoshka_widths"]
            .as_array()
            .expect("widths");
        assert!(
            widths.len() > 1 && widths.last() == Some(&D_SAE.into()),
            "{cfg}"
        );
    }
}
