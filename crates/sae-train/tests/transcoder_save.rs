//! A trained (skip) transcoder saved in the SAELens layout: cfg.json names it
//! `jumprelu_transcoder` / `jumprelu_skip_transcoder` with d_out, metadata.hook_name /
//! metadata.hook_name_out and no b_dec subtraction; our loader reads it back with identical encode and forward; and the folded
//! weights act on raw rows exactly as the trained parameters act on scaled ones
//! (y_hat = (f(c x W_enc + b_enc) W_dec + b_dec + c x W_skip) / c_out, computed here by hand).

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sae_model::{Sae, SaeMetadata};
use sae_train::{ArchConfig, Backend, TrainConfig, Trainer};

const D_IN: usize = 12;
const D_OUT: usize = 7;
const D_SAE: usize = 40;

/// `[x | y]` rows: x random, y a fixed nonlinear function of x at another scale.
fn rows(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n * (D_IN + D_OUT));
    for _ in 0..n {
        let x: Vec<f32> = (0..D_IN).map(|_| rng.random_range(-2.0..3.0)).collect();
        out.extend_from_slice(&x);
        out.extend((0..D_OUT).map(|j| 0.1 * (x[j] - 0.5).max(0.0) + 0.05 * x[j + 3]));
    }
    out
}

fn trained(skip: bool) -> Trainer {
    let cfg = TrainConfig {
        arch: ArchConfig::BatchTopK {
            k: 3,
            auxk_coef: 1.0 / 32.0,
            k_aux: None,
            threshold_ema: 0.9,
        },
        d_sae: Some(D_SAE),
        steps: 30,
        batch: 64,
        skip,
        ..TrainConfig::default()
    };
    let mut res = cfg.resolve(D_IN).unwrap();
    res.d_out = Some(D_OUT);
    let mut t = Trainer::new(cfg, res, &rows(256, 1), Backend::Fast).unwrap();
    for s in 0..30 {
        let mut b = rows(64, 100 + s);
        t.step(&mut b).unwrap();
    }
    assert!(t.state.threshold > 0.0);
    assert!(
        (t.state.target_scale - t.state.scale).abs() > 0.1 * t.state.scale,
        "the two sides are scaled on their own"
    );
    t
}

/// The trained parameters applied by hand to raw rows (JumpReLU with the global threshold).
fn by_hand(t: &Trainer, x: &[f32]) -> Vec<f32> {
    let p = &t.state.params;
    let (c, co, thr) = (t.state.scale, t.state.target_scale, t.state.threshold);
    let n = x.len() / D_IN;
    let mut out = vec![0f32; n * D_OUT];
    for r in 0..n {
        let xr: Vec<f64> = x[r * D_IN..(r + 1) * D_IN]
            .iter()
            .map(|v| (v * c) as f64)
            .collect();
        let o = &mut out[r * D_OUT..(r + 1) * D_OUT];
        let mut acc = vec![0f64; D_OUT];
        for (a, b) in acc.iter_mut().zip(&p.b_dec) {
            *a = *b as f64;
        }
        for j in 0..D_SAE {
            let z: f64 = (0..D_IN)
                .map(|i| xr[i] * p.w_enc[i * D_SAE + j] as f64)
                .sum::<f64>()
                + p.b_enc[j] as f64;
            if z > thr as f64 {
                for (k, a) in acc.iter_mut().enumerate() {
                    *a += z * p.w_dec[j * D_OUT + k] as f64;
                }
            }
        }
        if let Some(w) = &p.w_skip {
            for (k, a) in acc.iter_mut().enumerate() {
                *a += (0..D_IN)
                    .map(|i| xr[i] * w[i * D_OUT + k] as f64)
                    .sum::<f64>();
            }
        }
        for (v, a) in o.iter_mut().zip(&acc) {
            *v = (a / co as f64) as f32;
        }
    }
    out
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn transcoders_save_as_saelens_and_load_back_identical() {
    for skip in [false, true] {
        let t = trained(skip);
        let meta = SaeMetadata {
            hook_name: Some("blocks.3.ln2.hook_normalized".into()),
            ..SaeMetadata::default()
        };
        let mut meta = meta;
        meta.extra.insert(
            "hook_name_out".into(),
            serde_json::json!("blocks.3.hook_mlp_out"),
        );
        let sae = t.to_sae(meta).unwrap();
        let dir = tempfile::tempdir().unwrap();
        sae.save(dir.path(), None).unwrap();
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("cfg.json")).unwrap())
                .unwrap();
        let arch = if skip {
            "jumprelu_skip_transcoder"
        } else {
            "jumprelu_transcoder"
        };
        assert_eq!(cfg["architecture"], arch, "{cfg}");
        assert_eq!(cfg["d_in"], D_IN);
        assert_eq!(cfg["d_out"], D_OUT);
        assert_eq!(cfg["apply_b_dec_to_input"], false);
        // SAELens 6 reads the output hook from the metadata (cfg.metadata.hook_name_out).
        assert_eq!(cfg["metadata"]["hook_name_out"], "blocks.3.hook_mlp_out");
        assert_eq!(cfg["metadata"]["hook_name"], "blocks.3.ln2.hook_normalized");

        let back = Sae::load(dir.path()).unwrap();
        assert!(back.cfg.is_transcoder() && back.w_skip.is_some() == skip);
        assert_eq!(
            back.cfg.metadata.extra.get("hook_name_out"),
            Some(&serde_json::json!("blocks.3.hook_mlp_out"))
        );
        let raw = rows(50, 7);
        let x: Vec<f32> = raw
            .chunks(D_IN + D_OUT)
            .flat_map(|r| r[..D_IN].to_vec())
            .collect();
        let xt = Tensor::from_slice(&x, (50, D_IN), &Device::Cpu).unwrap();
        let (f0, y0) = sae.forward(&xt).unwrap();
        let (f1, y1) = back.forward(&xt).unwrap();
        assert_eq!(flat(&f0), flat(&f1), "skip {skip}: encode");
        assert_eq!(flat(&y0), flat(&y1), "skip {skip}: forward");
        let want = by_hand(&t, &x);
        let got = flat(&y1);
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = want
            .iter()
            .zip(&got)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            diff <= 1e-4 * scale,
            "skip {skip}: folded forward off by {diff} (scale {scale})"
        );
        assert!(flat(&f1).iter().any(|v| *v > 0.0), "some latents fire");
    }
}
