//! Transcoder steps (input x of width d_in, target y of width d_out, uncentred encoder input, an
//! optional skip connection W_skip) agree with the candle-autograd reference: the sparse TopK /
//! BatchTopK / Matryoshka BatchTopK step's loss and every gradient, W_skip's included, to 1e-5
//! relative, with d_out below, above and equal to d_in, k = 1 .. d_sae, and some / all / no dead
//! latents (Matryoshka: its inner prefixes reconstruct the target y); the reference itself
//! agrees with finite differences of the loss on b_dec and W_skip. ReLU-L1 and JumpReLU
//! transcoders (the dense GEMM step, which the threshold step hands them to) agree to 1e-4, as the
//! autoencoders' dense step does (tests/grad_agree.rs).

mod common;

use common::{assert_agree, batchtopk, run, topk};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sae_train::autograd::AutogradStep;
use sae_train::dense_step::DenseStep;
use sae_train::params::TranscoderInit;
use sae_train::sparse::{AuxPath, DensityPath, SparseThresholdStep, SparseTopKStep};
use sae_train::{ArchConfig, ArchKind, Params, StepContext};

/// Shape of one problem.
#[derive(Clone, Copy, Debug)]
struct Shape {
    d_in: usize,
    d_out: usize,
    d_sae: usize,
    rows: usize,
}

/// A transcoder with random biases and (when `skip`) a random, non-zero W_skip, and a batch (x, y).
fn problem(s: Shape, skip: bool, seed: u64) -> (Params, Vec<f32>, Vec<f32>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let b_dec: Vec<f32> = (0..s.d_out).map(|_| rng.random_range(-0.1..0.1)).collect();
    let init = TranscoderInit {
        dec_norm: 1.0,
        log_threshold: None,
        skip,
    };
    let mut p = Params::init_transcoder(s.d_in, s.d_sae, b_dec, init, seed);
    p.b_enc
        .iter_mut()
        .for_each(|v| *v = rng.random_range(-0.2..0.2));
    if let Some(w) = p.w_skip.as_mut() {
        w.iter_mut().for_each(|v| *v = rng.random_range(-0.2..0.2));
    }
    let x: Vec<f32> = (0..s.rows * s.d_in)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let y: Vec<f32> = (0..s.rows * s.d_out)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    (p, x, y)
}

fn compare(arch: ArchConfig, s: Shape, skip: bool, dead: &[bool], k_aux: usize) {
    let (p, x, y) = problem(s, skip, 5 + s.d_sae as u64 + s.d_out as u64);
    let ctx = StepContext {
        dead,
        sparsity_coef: 0.0,
        target: Some(&y),
        prefix_weights: None,
    };
    let n_dead = dead.iter().filter(|d| **d).count();
    let what = format!("{} {s:?} skip {skip} dead {n_dead}", arch.name());
    let mut reference_step = AutogradStep {
        arch: arch.clone(),
        k_aux,
    };
    let reference = run(&mut reference_step, &x, &p, &ctx);
    if n_dead > 0 && k_aux > 0 {
        assert!(reference.0.aux > 0.0, "{what}: AuxK must be exercised");
    }
    if skip {
        let gs = reference.1.w_skip.as_ref().expect("W_skip gradient");
        assert!(
            gs.iter().any(|v| *v != 0.0),
            "{what}: W_skip gets a gradient"
        );
    }
    for path in [AuxPath::Sparse, AuxPath::Dense, AuxPath::Auto] {
        let mut step = SparseTopKStep::new(arch.clone(), k_aux).with_aux_path(path);
        let fast = run(&mut step, &x, &p, &ctx);
        assert_agree(&reference, &fast, 1e-5, &format!("{what} {path:?}"));
        let again = run(&mut step, &x, &p, &ctx);
        assert_eq!(fast.1, again.1, "{what} {path:?}: reused workspace");
    }
}

#[test]
fn sparse_transcoder_backward_matches_autograd() {
    let shapes = [
        Shape {
            d_in: 16,
            d_out: 24,
            d_sae: 48,
            rows: 64,
        },
        Shape {
            d_in: 37,
            d_out: 13,
            d_sae: 100,
            rows: 70,
        },
        Shape {
            d_in: 20,
            d_out: 20,
            d_sae: 64,
            rows: 33,
        },
    ];
    for arch in [topk as fn(usize) -> ArchConfig, batchtopk] {
        for s in shapes {
            let some: Vec<bool> = (0..s.d_sae).map(|j| j % 3 == 0).collect();
            let all = vec![true; s.d_sae];
            let none = vec![false; s.d_sae];
            for skip in [false, true] {
                for k in [1, 4, s.d_sae] {
                    compare(arch(k), s, skip, &some, 8);
                }
                compare(arch(4), s, skip, &all, 8);
                compare(arch(4), s, skip, &none, 8);
            }
        }
    }
}

/// Matryoshka BatchTopK with `fractions` (innermost first) and inner-prefix `weights`.
fn matryoshka(k: usize, fractions: &[f64], weights: Option<Vec<f64>>) -> ArchConfig {
    let mut arch = ArchConfig::default_for(ArchKind::MatryoshkaBatchTopK, Some(k));
    if let ArchConfig::MatryoshkaBatchTopK {
        group_fractions,
        group_weights,
        ..
    } = &mut arch
    {
        *group_fractions = fractions.to_vec();
        *group_weights = weights;
    }
    arch
}

/// Matryoshka BatchTopK transcoders: every inner prefix reconstructs the target y (plus the skip
/// path), so the prefix losses reach W_dec, W_enc, b_enc, b_dec and W_skip; three and two groups,
/// unequal weights, AuxK on and off, d_out below and above d_in.
#[test]
fn matryoshka_transcoder_backward_matches_autograd() {
    let shapes = [
        Shape {
            d_in: 16,
            d_out: 24,
            d_sae: 48,
            rows: 64,
        },
        Shape {
            d_in: 37,
            d_out: 13,
            d_sae: 100,
            rows: 70,
        },
    ];
    for s in shapes {
        let some: Vec<bool> = (0..s.d_sae).map(|j| j % 3 == 0).collect();
        let none = vec![false; s.d_sae];
        for (fr, w) in [
            (vec![0.0625, 0.1875, 0.75], None),
            (vec![0.25, 0.75], Some(vec![0.5])),
        ] {
            for skip in [false, true] {
                for k in [1, 4] {
                    compare(matryoshka(k, &fr, w.clone()), s, skip, &some, 8);
                }
                compare(matryoshka(4, &fr, w.clone()), s, skip, &none, 8);
            }
        }
    }
}

/// The reference's b_dec and W_skip gradients against central differences of its own loss (TopK
/// with no dead latents, so the loss is smooth where the selection does not change).
#[test]
fn transcoder_reference_matches_finite_differences() {
    let s = Shape {
        d_in: 6,
        d_out: 5,
        d_sae: 12,
        rows: 16,
    };
    let (p, x, y) = problem(s, true, 11);
    let dead = vec![false; s.d_sae];
    let ctx = StepContext {
        dead: &dead,
        sparsity_coef: 0.0,
        target: Some(&y),
        prefix_weights: None,
    };
    let mut step = AutogradStep {
        arch: topk(3),
        k_aux: 0,
    };
    let (_, g) = run(&mut step, &x, &p, &ctx);
    let loss_at = |q: &Params| {
        let mut st = AutogradStep {
            arch: topk(3),
            k_aux: 0,
        };
        run(&mut st, &x, q, &ctx).0.loss
    };
    let h = 1e-2f32;
    for i in [0, 3, s.d_in * s.d_out - 1] {
        let (mut a, mut b) = (p.clone(), p.clone());
        a.w_skip.as_mut().unwrap()[i] += h;
        b.w_skip.as_mut().unwrap()[i] -= h;
        let fd = (loss_at(&a) - loss_at(&b)) / (2.0 * h as f64);
        let an = g.w_skip.as_ref().unwrap()[i] as f64;
        assert!(
            (fd - an).abs() < 2e-3 * an.abs().max(0.05),
            "W_skip[{i}]: fd {fd} vs {an}"
        );
    }
    for i in 0..s.d_out {
        let (mut a, mut b) = (p.clone(), p.clone());
        a.b_dec[i] += h;
        b.b_dec[i] -= h;
        let fd = (loss_at(&a) - loss_at(&b)) / (2.0 * h as f64);
        let an = g.b_dec[i] as f64;
        assert!(
            (fd - an).abs() < 2e-3 * an.abs().max(0.05),
            "b_dec[{i}]: fd {fd} vs {an}"
        );
    }
}

/// ReLU-L1 and JumpReLU transcoders (about half the entries firing; JumpReLU thresholds spread so
/// that some entries sit inside the kernel window): the dense step, directly and through the
/// threshold step on every path, against autograd.
#[test]
fn threshold_transcoders_match_autograd() {
    let relu = ArchConfig::ReluL1 {
        l1_coef: 0.3,
        l1_warmup_frac: 0.0,
    };
    let jump = |pre_act_ste| ArchConfig::JumpRelu {
        bandwidth: 0.05,
        init_threshold: 0.1,
        l0_coef: 0.2,
        l0_warmup_frac: 0.0,
        target_l0: Some(8.0),
        pre_act_ste,
    };
    let s = Shape {
        d_in: 19,
        d_out: 11,
        d_sae: 40,
        rows: 50,
    };
    for (arch, thr) in [(relu, false), (jump(false), true), (jump(true), true)] {
        for skip in [false, true] {
            let (mut p, x, y) = problem(s, skip, 21);
            if thr {
                p.log_threshold = Some(
                    (0..s.d_sae)
                        .map(|j| (0.05 + 0.01 * (j % 7) as f32).ln())
                        .collect(),
                );
            }
            let dead = vec![false; s.d_sae];
            let ctx = StepContext {
                dead: &dead,
                sparsity_coef: 0.4,
                target: Some(&y),
                prefix_weights: None,
            };
            let what = format!("{} skip {skip}", arch.name());
            let mut reference_step = AutogradStep {
                arch: arch.clone(),
                k_aux: 0,
            };
            let reference = run(&mut reference_step, &x, &p, &ctx);
            assert!(
                reference.0.l0 > 1.0,
                "{what}: latents fire ({})",
                reference.0.l0
            );
            let dense = run(&mut DenseStep { arch: arch.clone() }, &x, &p, &ctx);
            assert_agree(&reference, &dense, 1e-4, &format!("{what} dense"));
            for path in [DensityPath::Sparse, DensityPath::Dense, DensityPath::Auto] {
                let mut step = SparseThresholdStep::new(arch.clone()).with_path(path);
                let fast = run(&mut step, &x, &p, &ctx);
                assert_agree(&reference, &fast, 1e-4, &format!("{what} {path:?}"));
            }
            if thr {
                let g = reference.1.log_threshold.as_ref().unwrap();
                assert!(
                    g.iter().any(|v| *v != 0.0),
                    "{what}: the STE kernel is exercised"
                );
            }
        }
    }
}
