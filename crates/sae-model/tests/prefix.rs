//! Matryoshka per-prefix metrics against a computation by plain loops, and the checks on the
//! `matryoshka_widths` metadata.

use candle_core::{Device, Tensor};
use sae_model::metrics::{fvu, l0, mse};
use sae_model::{Activation, Evaluator, Sae, SaeConfig};

const D_IN: usize = 3;
const D_SAE: usize = 5;
const ROWS: usize = 37;

/// Deterministic values in [-1, 1) (a linear congruential generator).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn t(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
}

struct Weights {
    w_enc: Vec<f32>,
    b_enc: Vec<f32>,
    w_dec: Vec<f32>,
    b_dec: Vec<f32>,
}

fn weights() -> Weights {
    Weights {
        w_enc: values(D_IN * D_SAE, 1),
        b_enc: values(D_SAE, 2).iter().map(|v| v * 0.3).collect(),
        w_dec: values(D_SAE * D_IN, 3),
        b_dec: values(D_IN, 4),
    }
}

fn sae_with(widths: serde_json::Value) -> Result<Sae, sae_model::SaeError> {
    let w = weights();
    let mut cfg = SaeConfig::new(D_IN, D_SAE, Activation::Relu);
    cfg.metadata
        .extra
        .insert("matryoshka_widths".into(), widths);
    Sae::new(
        cfg,
        t(&w.w_enc, &[D_IN, D_SAE]),
        t(&w.b_enc, &[D_SAE]),
        t(&w.w_dec, &[D_SAE, D_IN]),
        t(&w.b_dec, &[D_IN]),
        None,
    )
}

/// Latents f = relu((x - b_dec) W_enc + b_enc) by loops: [ROWS, D_SAE].
fn latents_by_loops(w: &Weights, x: &[f32]) -> Vec<f32> {
    let mut f = vec![0f32; ROWS * D_SAE];
    for r in 0..ROWS {
        for j in 0..D_SAE {
            let mut z = w.b_enc[j] as f64;
            for i in 0..D_IN {
                z += (x[r * D_IN + i] - w.b_dec[i]) as f64 * w.w_enc[i * D_SAE + j] as f64;
            }
            f[r * D_SAE + j] = z.max(0.0) as f32;
        }
    }
    f
}

/// The reconstruction from the first `width` latents only, by loops.
fn prefix_recon(w: &Weights, f: &[f32], width: usize) -> Vec<f32> {
    let mut out = vec![0f32; ROWS * D_IN];
    for r in 0..ROWS {
        for i in 0..D_IN {
            let mut y = w.b_dec[i] as f64;
            for j in 0..width {
                y += f[r * D_SAE + j] as f64 * w.w_dec[j * D_IN + i] as f64;
            }
            out[r * D_IN + i] = y as f32;
        }
    }
    out
}

#[test]
fn prefix_metrics_match_plain_loops() {
    let sae = sae_with(serde_json::json!([1, 3, 5])).unwrap();
    let x = values(ROWS * D_IN, 9);
    let mut ev = Evaluator::new(&sae);
    // Two pushes: the streaming statistics merge batches.
    ev.push(&x[..10 * D_IN]).unwrap();
    ev.push(&x[10 * D_IN..]).unwrap();
    let report = ev.report(None).unwrap();
    let prefixes = report
        .prefixes
        .clone()
        .expect("a Matryoshka SAE has prefix metrics");
    let w = weights();
    let f = latents_by_loops(&w, &x);
    assert_eq!(
        prefixes.iter().map(|p| p.width).collect::<Vec<_>>(),
        [1, 3, 5]
    );
    for p in &prefixes {
        let recon = prefix_recon(&w, &f, p.width);
        let inner: Vec<f32> = f
            .chunks(D_SAE)
            .flat_map(|row| row[..p.width].to_vec())
            .collect();
        let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-5, "width {}: {a} vs {b}", p.width);
        close(p.fvu, fvu(&x, &recon, D_IN));
        close(p.mse, mse(&x, &recon));
        close(p.l0, l0(&inner, p.width));
    }
    // The full-width entry is the SAE's own fvu and l0.
    let full = prefixes.last().unwrap();
    assert!((full.fvu - report.metrics.fvu).abs() < 1e-9);
    assert!((full.l0 - report.metrics.l0).abs() < 1e-9);
    let json = serde_json::to_value(&report).unwrap();
    assert!(
        json["prefixes"].is_array() && json.get("fvu").is_some(),
        "{json}"
    );
    // Readers of eval.json that know only the plain metrics still read it.
    let plain: sae_model::EvalMetrics = serde_json::from_value(json).unwrap();
    assert_eq!(plain, report.metrics);
}

#[test]
fn plain_saes_have_no_prefix_metrics() {
    let w = weights();
    let sae = Sae::new(
        SaeConfig::new(D_IN, D_SAE, Activation::Relu),
        t(&w.w_enc, &[D_IN, D_SAE]),
        t(&w.b_enc, &[D_SAE]),
        t(&w.w_dec, &[D_SAE, D_IN]),
        t(&w.b_dec, &[D_IN]),
        None,
    )
    .unwrap();
    let mut ev = Evaluator::new(&sae);
    ev.push(&values(4 * D_IN, 5)).unwrap();
    let r = ev.report(None).unwrap();
    assert!(r.prefixes.is_none());
    assert!(serde_json::to_value(&r).unwrap().get("prefixes").is_none());
}

#[test]
fn bad_widths_are_refused_with_their_value() {
    for bad in [
        serde_json::json!([1, 3]),
        serde_json::json!([3, 1, 5]),
        serde_json::json!([0, 5]),
        serde_json::json!([1, 6]),
        serde_json::json!("5"),
        serde_json::json!([1.5, 5]),
    ] {
        let err = sae_with(bad.clone()).unwrap_err().to_string();
        assert!(err.contains("matryoshka_widths"), "{bad}: {err}");
    }
}
