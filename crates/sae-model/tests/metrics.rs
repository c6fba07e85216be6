//! Every metric against values computed by hand, and the streaming paths against the two-pass ones.

use candle_core::{Device, Tensor};
use sae_model::metrics::*;
use sae_model::{evaluate, Activation, Evaluator, Sae, SaeConfig, SaeError};
use sae_store::{DType, RowBatch, Source, Store, StoreSpec, StoreWriter, SynthSource};

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-6, "{a} != {b}");
}

// x = [[1, 2], [3, 4]], x_hat = [[1, 1], [2, 4]]: squared errors 0 + 1 + 1 + 0 = 2.
const X: [f32; 4] = [1.0, 2.0, 3.0, 4.0];
const X_HAT: [f32; 4] = [1.0, 1.0, 2.0, 4.0];

#[test]
fn mse_by_hand() {
    close(mse(&X, &X_HAT), 2.0 / 4.0);
}

#[test]
fn fvu_by_hand() {
    // mean = (2, 3); centred rows (-1, -1), (1, 1): total 4; fvu = 2 / 4.
    close(fvu(&X, &X_HAT, 2), 0.5);
}

#[test]
fn l2_ratio_by_hand() {
    // sqrt(2)/sqrt(5) = 0.6324555, sqrt(20)/5 = 0.8944272; a zero row is skipped.
    let x = [1.0, 2.0, 3.0, 4.0, 0.0, 0.0];
    let x_hat = [1.0, 1.0, 2.0, 4.0, 9.0, 9.0];
    close(l2_ratio(&x, &x_hat, 2), (0.6324555320 + 0.8944271910) / 2.0);
}

#[test]
fn l0_dead_dense_by_hand() {
    let f = [0.0, 1.5, 0.0, 0.0, 2.0, 0.0, 0.1, 0.0];
    close(l0(&f, 4), 1.5);
    close(dead_frac(&[1, 1, 1, 0]), 0.25);
    // 20 rows: dense means > 2 rows; exactly 2 is not dense.
    close(dense_frac(&[0, 2, 3, 10], 20), 0.5);
}

#[test]
fn mmcs_and_recovered_by_hand() {
    let best = [1.0, 0.5, 0.95, 0.9];
    close(mmcs(&best), 0.8375);
    // 0.9 itself is not above the threshold.
    close(recovered_frac(&best), 0.5);
}

#[test]
fn streaming_recon_agrees_with_two_pass_on_offset_data() {
    let (n, d) = (1001, 3);
    let x: Vec<f32> = (0..n * d)
        .map(|i| 1.0e4 + ((i as f32) * 0.91).sin())
        .collect();
    let x_hat: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, v)| v + 0.01 * ((i % 7) as f32 - 3.0))
        .collect();
    let mut s = ReconStats::new(d);
    let mut start = 0;
    for len in [1usize, 10, 333, 2, 655] {
        s.push(
            &x[start * d..(start + len) * d],
            &x_hat[start * d..(start + len) * d],
        );
        start += len;
    }
    assert_eq!(s.rows(), n as u64);
    let (a, b) = (s.fvu(), fvu(&x, &x_hat, d));
    assert!((a - b).abs() < 1e-9 * b, "{a} vs {b}");
    close(s.mse(), mse(&x, &x_hat));
    close(s.l2_ratio(), l2_ratio(&x, &x_hat, d));
}

/// ReLU SAE with identity encoder and decoder, zero biases: x_hat = max(x, 0).
fn identity_sae() -> Sae {
    let eye = |n| Tensor::eye(n, candle_core::DType::F32, &Device::Cpu).unwrap();
    let zeros = |n| Tensor::zeros(n, candle_core::DType::F32, &Device::Cpu).unwrap();
    Sae::new(
        SaeConfig::new(2, 2, Activation::Relu),
        eye(2),
        zeros(2),
        eye(2),
        zeros(2),
        None,
    )
    .unwrap()
}

#[test]
fn evaluator_by_hand() {
    // x = [[1, 2], [-1, 3]] -> f = x_hat = [[1, 2], [0, 3]]. Squared error 1: mse 1/4.
    // mean (0, 2.5); centred squares 1 + 0.25 + 1 + 0.25 = 2.5: fvu 0.4.
    // l0 (2 + 1)/2; counts [1, 2] of 2 rows: none dead, both dense.
    // l2_ratio: (1 + 3/sqrt(10)) / 2.
    let sae = identity_sae();
    let mut ev = Evaluator::new(&sae);
    ev.push(&[1.0, 2.0, -1.0, 3.0]).unwrap();
    let m = ev.finish(None).unwrap();
    close(m.mse, 0.25);
    close(m.fvu, 0.4);
    close(m.l0, 1.5);
    close(m.dead_frac, 0.0);
    close(m.dense_frac, 1.0);
    close(m.l2_ratio, (1.0 + 3.0 / 10f64.sqrt()) / 2.0);
    assert_eq!(m.mmcs, None);
    let features = Tensor::from_vec(vec![0.0f32, 1.0, 0.6, 0.8], (2, 2), &Device::Cpu).unwrap();
    let m = ev.finish(Some(&features)).unwrap();
    // Best cosines: 1 and 0.8 -> mmcs 0.9, recovered 1/2.
    close(m.mmcs.unwrap(), 0.9);
    close(m.recovered_frac.unwrap(), 0.5);
    let json = serde_json::to_value(&m).unwrap();
    let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
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
}

fn tiny_store(dir: &std::path::Path, d: usize, rows: &[f32], eval_rows: u64) -> Store {
    let source = Source::Synthetic(SynthSource {
        features: 1,
        dim: d,
        firing_prob: 1.0,
        zipf_exponent: None,
        correlated_groups: None,
        samples: (rows.len() / d) as u64,
        seed: 0,
        magnitude: "uniform(0,1)".into(),
    });
    let spec = StoreSpec {
        d,
        dtype: DType::F32,
        shard_rows: 2,
        source,
        with_token_ids: false,
        with_doc_ids: false,
        with_positions: false,
    };
    let mut w = StoreWriter::create(dir, spec).unwrap();
    w.push(
        RowBatch {
            acts: rows,
            ..Default::default()
        },
        None,
    )
    .unwrap();
    w.finish(eval_rows).unwrap();
    Store::open(dir).unwrap()
}

#[test]
fn evaluate_reads_only_the_eval_split() {
    let dir = tempfile::tempdir().unwrap();
    // Three train rows (huge, would change every metric) then the two hand-computed eval rows.
    let rows = [100.0, 100.0, -50.0, 7.0, 9.0, 9.0, 1.0, 2.0, -1.0, 3.0];
    let store = tiny_store(dir.path(), 2, &rows, 2);
    let m = evaluate(&identity_sae(), &store, None).unwrap();
    close(m.mse, 0.25);
    close(m.fvu, 0.4);
    close(m.l0, 1.5);
}

#[test]
fn evaluate_rejects_a_width_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let store = tiny_store(dir.path(), 3, &[1.0; 6], 1);
    let err = evaluate(&identity_sae(), &store, None).unwrap_err();
    assert!(
        matches!(
            err,
            SaeError::StoreWidth {
                store_d: 3,
                sae_d_in: 2,
                ..
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("d = 3") && msg.contains("d_in = 2"), "{msg}");
}
