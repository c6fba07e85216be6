//! The hand-derived sparse TopK backward agrees with the candle-autograd reference (TopK and
//! BatchTopK, with AuxK on dead latents), and autograd agrees with finite differences for JumpReLU's
//! decoder path.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sae_train::autograd::AutogradStep;
use sae_train::sparse_topk::SparseTopKStep;
use sae_train::{ArchConfig, Params, Step, StepContext};

fn random_problem(d_in: usize, d_sae: usize, rows: usize, seed: u64) -> (Params, Vec<f32>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let b_dec: Vec<f32> = (0..d_in).map(|_| rng.random_range(-0.1..0.1)).collect();
    let mut p = Params::init(d_in, d_sae, b_dec, 1.0, None, seed);
    p.b_enc
        .iter_mut()
        .for_each(|v| *v = rng.random_range(-0.2..0.2));
    // Perturb W_enc so it is no longer exactly W_dec^T.
    p.w_enc
        .iter_mut()
        .for_each(|v| *v += rng.random_range(-0.05..0.05));
    let x: Vec<f32> = (0..rows * d_in)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    (p, x)
}

fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn compare(arch: ArchConfig) {
    let (d_in, d_sae, rows) = (16, 48, 64);
    let (p, x) = random_problem(d_in, d_sae, rows, 3);
    let dead: Vec<bool> = (0..d_sae).map(|j| j % 3 == 0).collect();
    let ctx = StepContext {
        dead: &dead,
        sparsity_coef: 0.0,
    };
    let reference = AutogradStep {
        arch: arch.clone(),
        k_aux: 8,
    }
    .run(&x, &p, &ctx)
    .unwrap();
    let sparse = SparseTopKStep { arch, k_aux: 8 }.run(&x, &p, &ctx).unwrap();
    assert!(reference.aux > 0.0, "AuxK must be exercised");
    assert!((reference.loss - sparse.loss).abs() < 1e-4 * reference.loss.abs().max(1.0));
    assert!((reference.aux - sparse.aux).abs() < 1e-4 * reference.aux.max(1.0));
    assert_eq!(reference.fired, sparse.fired);
    for ((name, a), (_, b)) in reference
        .grads
        .buffers()
        .into_iter()
        .zip(sparse.grads.buffers())
    {
        let d = max_rel_diff(a, b);
        assert!(d < 1e-4, "{name}: relative difference {d}");
    }
}

#[test]
fn sparse_topk_backward_matches_autograd() {
    compare(ArchConfig::TopK {
        k: 4,
        auxk_coef: 1.0 / 32.0,
        k_aux: Some(8),
    });
}

#[test]
fn sparse_batchtopk_backward_matches_autograd() {
    compare(ArchConfig::BatchTopK {
        k: 4,
        auxk_coef: 1.0 / 32.0,
        k_aux: Some(8),
        threshold_ema: 0.99,
    });
}

#[test]
fn relu_l1_gradient_matches_finite_differences() {
    // d loss / d b_enc[j] by central differences in f64-ish precision (f32 forward, small batch).
    let (d_in, d_sae, rows) = (6, 10, 8);
    let (p, x) = random_problem(d_in, d_sae, rows, 11);
    let step = AutogradStep {
        arch: ArchConfig::ReluL1 {
            l1_coef: 0.5,
            l1_warmup_frac: 0.0,
        },
        k_aux: 0,
    };
    let ctx = StepContext {
        dead: &[false; 10],
        sparsity_coef: 0.5,
    };
    let out = step.run(&x, &p, &ctx).unwrap();
    for j in [0usize, 3, 7] {
        let h = 1e-2f32;
        let mut plus = p.clone();
        plus.w_dec[j * d_in] += h;
        let mut minus = p.clone();
        minus.w_dec[j * d_in] -= h;
        let lp = step.run(&x, &plus, &ctx).unwrap().loss;
        let lm = step.run(&x, &minus, &ctx).unwrap().loss;
        let fd = (lp - lm) / (2.0 * h as f64);
        let g = out.grads.w_dec[j * d_in] as f64;
        assert!(
            (fd - g).abs() < 1e-2 * g.abs().max(0.1),
            "latent {j}: fd {fd} vs {g}"
        );
    }
}

fn compare_dense(arch: ArchConfig, coef: f64, with_threshold: bool) {
    use sae_train::dense_step::DenseStep;
    let (d_in, d_sae, rows) = (16, 48, 64);
    let (mut p, x) = random_problem(d_in, d_sae, rows, 5);
    if with_threshold {
        p.log_threshold = Some(
            (0..d_sae)
                .map(|j| (0.05 + 0.01 * (j % 7) as f32).ln())
                .collect(),
        );
    }
    let dead = vec![false; d_sae];
    let ctx = StepContext {
        dead: &dead,
        sparsity_coef: coef,
    };
    let reference = AutogradStep {
        arch: arch.clone(),
        k_aux: 0,
    }
    .run(&x, &p, &ctx)
    .unwrap();
    let fast = DenseStep { arch }.run(&x, &p, &ctx).unwrap();
    assert!((reference.loss - fast.loss).abs() < 1e-4 * reference.loss.abs().max(1.0));
    assert_eq!(reference.fired, fast.fired);
    for ((name, a), (_, b)) in reference
        .grads
        .buffers()
        .into_iter()
        .zip(fast.grads.buffers())
    {
        let d = max_rel_diff(a, b);
        assert!(d < 1e-4, "{name}: relative difference {d}");
        if name == "log_threshold" {
            assert!(
                a.iter().any(|v| *v != 0.0),
                "the STE kernel must be exercised"
            );
        }
    }
}

#[test]
fn dense_relu_l1_backward_matches_autograd() {
    let arch = ArchConfig::ReluL1 {
        l1_coef: 0.7,
        l1_warmup_frac: 0.0,
    };
    compare_dense(arch, 0.7, false);
}

#[test]
fn dense_jumprelu_backward_matches_autograd() {
    for target_l0 in [None, Some(3.0)] {
        let arch = ArchConfig::JumpRelu {
            l0_coef: 0.3,
            target_l0,
            l0_warmup_frac: 0.0,
            bandwidth: 0.05,
            init_threshold: 0.05,
        };
        compare_dense(arch, 0.3, true);
    }
}
