//! The hand-derived steps agree with the candle-autograd reference: the sparse TopK / BatchTopK
//! step (with AuxK on some, all or no dead latents, k from 1 to d_sae, several shapes) to 1e-5
//! relative, the dense ReLU-L1 / JumpReLU step to 1e-4; and autograd agrees with finite differences.

mod common;

use common::{assert_agree, batchtopk, run, topk};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sae_train::autograd::AutogradStep;
use sae_train::sparse::{AuxPath, DensityPath, SparseThresholdStep, SparseTopKStep};
use sae_train::{ArchConfig, Params, StepContext};

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

/// Sparse TopK-family step against candle autograd on one random problem.
fn compare_sparse(arch: ArchConfig, shape: (usize, usize, usize), dead: &[bool], k_aux: usize) {
    compare_sparse_weighted(arch, shape, dead, k_aux, None);
}

/// [`compare_sparse`] with Matryoshka's per-step inner weights (`prefix_weights`) in the context.
fn compare_sparse_weighted(
    arch: ArchConfig,
    shape: (usize, usize, usize),
    dead: &[bool],
    k_aux: usize,
    prefix_weights: Option<&[f64]>,
) {
    let (d_in, d_sae, rows) = shape;
    let problem = random_problem(d_in, d_sae, rows, 3 + d_sae as u64);
    compare_sparse_on(arch, problem, dead, k_aux, prefix_weights);
}

/// [`compare_sparse_weighted`] on a given problem.
fn compare_sparse_on(
    arch: ArchConfig,
    (p, x): (Params, Vec<f32>),
    dead: &[bool],
    k_aux: usize,
    prefix_weights: Option<&[f64]>,
) {
    let shape = (p.d_in, p.d_sae, x.len() / p.d_in);
    let ctx = StepContext {
        dead,
        sparsity_coef: 0.0,
        target: None,
        prefix_weights,
    };
    let what = format!(
        "{} {shape:?} dead {}",
        arch.name(),
        dead.iter().filter(|d| **d).count()
    );
    let reference = run(
        &mut AutogradStep {
            arch: arch.clone(),
            k_aux,
        },
        &x,
        &p,
        &ctx,
    );
    if dead.iter().any(|d| *d) && k_aux > 0 {
        assert!(reference.0.aux > 0.0, "{what}: AuxK must be exercised");
    } else {
        assert_eq!(reference.0.aux, 0.0);
    }
    for path in [AuxPath::Sparse, AuxPath::Dense, AuxPath::Auto] {
        let mut step = SparseTopKStep::new(arch.clone(), k_aux).with_aux_path(path);
        let fast = run(&mut step, &x, &p, &ctx);
        assert_agree(&reference, &fast, 1e-5, &format!("{what} {path:?}"));
        // A second step on the same workspace gives the same result (buffers are reused).
        let again = run(&mut step, &x, &p, &ctx);
        assert_eq!(fast.1, again.1, "{what} {path:?}: reused workspace");
    }
}

/// Every third latent dead, all dead, none dead; k = 1, a middle k and k = d_sae; several shapes
/// (widths that are not multiples of the vector lanes or the row blocks).
#[test]
fn sparse_topk_family_backward_matches_autograd() {
    for arch in [topk as fn(usize) -> ArchConfig, batchtopk] {
        for (d_in, d_sae, rows) in [(16, 48, 64), (37, 100, 70), (64, 256, 33)] {
            let some: Vec<bool> = (0..d_sae).map(|j| j % 3 == 0).collect();
            let all = vec![true; d_sae];
            let none = vec![false; d_sae];
            for k in [1, 4, d_sae] {
                compare_sparse(arch(k), (d_in, d_sae, rows), &some, 8);
            }
            compare_sparse(arch(4), (d_in, d_sae, rows), &all, 8);
            compare_sparse(arch(4), (d_in, d_sae, rows), &none, 8);
            compare_sparse(arch(4), (d_in, d_sae, rows), &some, d_sae);
        }
    }
}

/// Every dead latent eligible for AuxK (k_aux >= n_dead, the dense block read straight from the
/// pre-activations) with so few positive dead values that the cost rule picks the sparse path,
/// which then selects the AuxK rows after all.
#[test]
fn auxk_with_every_dead_latent_eligible_and_few_positive_matches_autograd() {
    let (d_in, d_sae, rows) = (16, 48, 64);
    let dead: Vec<bool> = (0..d_sae).map(|j| j % 3 == 0).collect();
    let (mut p, x) = random_problem(d_in, d_sae, rows, 51);
    for (b, _) in p.b_enc.iter_mut().zip(&dead).filter(|(_, d)| **d) {
        *b -= 0.9;
    }
    let (_, z) = sae_train::kernels::pre_acts(&x, &p);
    let n_dead = dead.iter().filter(|d| **d).count();
    let positive = z
        .chunks(d_sae)
        .flat_map(|r| r.iter().zip(&dead).filter(|(v, d)| **d && **v > 0.0))
        .count();
    // Dense only when n_dead <= 8 x the positive dead entries per row.
    assert!(
        positive > 0 && n_dead * rows > 8 * positive,
        "{positive} of {}",
        n_dead * rows
    );
    for arch in [topk(4), batchtopk(4)] {
        compare_sparse_on(arch, (p.clone(), x.clone()), &dead, d_sae, None);
    }
}

#[test]
fn relu_l1_gradient_matches_finite_differences() {
    // d loss / d b_enc[j] by central differences in f64-ish precision (f32 forward, small batch).
    let (d_in, d_sae, rows) = (6, 10, 8);
    let (p, x) = random_problem(d_in, d_sae, rows, 11);
    let mut step = AutogradStep {
        arch: ArchConfig::ReluL1 {
            l1_coef: 0.5,
            l1_warmup_frac: 0.0,
        },
        k_aux: 0,
    };
    let ctx = StepContext {
        dead: &[false; 10],
        sparsity_coef: 0.5,
        target: None,
        prefix_weights: None,
    };
    let (_, grads) = run(&mut step, &x, &p, &ctx);
    for j in [0usize, 3, 7] {
        let h = 1e-2f32;
        let mut plus = p.clone();
        plus.w_dec[j * d_in] += h;
        let mut minus = p.clone();
        minus.w_dec[j * d_in] -= h;
        let lp = run(&mut step, &x, &plus, &ctx).0.loss;
        let lm = run(&mut step, &x, &minus, &ctx).0.loss;
        let fd = (lp - lm) / (2.0 * h as f64);
        let g = grads.w_dec[j * d_in] as f64;
        assert!(
            (fd - g).abs() < 1e-2 * g.abs().max(0.1),
            "latent {j}: fd {fd} vs {g}"
        );
    }
}

/// ReLU-L1 / JumpReLU: the dense GEMM step and the sparse step (both paths, and Auto) against
/// autograd. b_enc is shifted so that about `firing` of the entries fire: 0.5 (the dense regime)
/// and 0.03 (the sparse one).
fn compare_threshold(arch: ArchConfig, coef: f64, with_threshold: bool, firing: f64) {
    use sae_train::dense_step::DenseStep;
    let (d_in, d_sae, rows) = (24, 80, 70);
    let (mut p, x) = random_problem(d_in, d_sae, rows, 5);
    let (_, mut z) = sae_train::kernels::pre_acts(&x, &p);
    let at = ((1.0 - firing) * z.len() as f64) as usize;
    // Off the order statistic itself, so that no entry sits exactly on a kink (where the one-sided
    // derivatives differ and the implementations may pick either).
    let q = *z.select_nth_unstable_by(at, |a, b| a.total_cmp(b)).1 * 1.0007 + 1e-4;
    if with_threshold {
        // Thresholds spread around q so that some entries sit inside the kernel window.
        p.log_threshold = Some(
            (0..d_sae)
                .map(|j| (q.max(0.02) * (0.9013 + 0.05 * (j % 5) as f32)).ln())
                .collect(),
        );
    } else {
        p.b_enc.iter_mut().for_each(|v| *v -= q.max(0.0));
    }
    let dead = vec![false; d_sae];
    let ctx = StepContext {
        dead: &dead,
        sparsity_coef: coef,
        target: None,
        prefix_weights: None,
    };
    let what = format!("{} firing {firing}", arch.name());
    let reference = run(
        &mut AutogradStep {
            arch: arch.clone(),
            k_aux: 0,
        },
        &x,
        &p,
        &ctx,
    );
    let dense = run(&mut DenseStep { arch: arch.clone() }, &x, &p, &ctx);
    assert_agree(&reference, &dense, 1e-4, &format!("{what} dense step"));
    for path in [DensityPath::Sparse, DensityPath::Dense, DensityPath::Auto] {
        let mut step = SparseThresholdStep::new(arch.clone()).with_path(path);
        let fast = run(&mut step, &x, &p, &ctx);
        assert_agree(&reference, &fast, 1e-4, &format!("{what} {path:?}"));
        // The second step reuses the workspace (and gives the same result up to summation order).
        let again = run(&mut step, &x, &p, &ctx);
        assert_agree(&reference, &again, 1e-4, &format!("{what} {path:?} again"));
    }
    for (name, a) in reference.1.buffers() {
        if name == "log_threshold" {
            assert!(
                a.iter().any(|v| *v != 0.0),
                "the STE kernel must be exercised"
            );
        }
    }
}

#[test]
fn relu_l1_steps_match_autograd() {
    let arch = ArchConfig::ReluL1 {
        l1_coef: 0.7,
        l1_warmup_frac: 0.0,
    };
    for firing in [0.5, 0.03] {
        compare_threshold(arch.clone(), 0.7, false, firing);
    }
}

#[test]
fn jumprelu_steps_match_autograd() {
    // A narrow kernel (dF by dots on the window entries) and a wide one (most entries in the
    // window: dF by one GEMM).
    // Both estimators: the threshold alone (Gemma Scope) and the pre-activations too.
    let cases = [
        (None, 0.05, false),
        (Some(3.0), 0.05, false),
        (Some(3.0), 0.3, false),
        (None, 0.05, true),
        (Some(3.0), 0.05, true),
        (Some(3.0), 0.3, true),
    ];
    for (target_l0, bandwidth, pre_act_ste) in cases {
        let arch = ArchConfig::JumpRelu {
            l0_coef: 0.3,
            target_l0,
            l0_warmup_frac: 0.0,
            bandwidth,
            init_threshold: 0.05,
            pre_act_ste,
        };
        for firing in [0.5, 0.03] {
            compare_threshold(arch.clone(), 0.3, true, firing);
        }
    }
}

/// Matryoshka BatchTopK: the prefix losses' gradients (three and two groups, unequal weights,
/// AuxK on and off) agree with autograd.
#[test]
fn matryoshka_backward_matches_autograd() {
    for (d_in, d_sae, rows) in [(16, 48, 64), (37, 100, 70)] {
        let some: Vec<bool> = (0..d_sae).map(|j| j % 3 == 0).collect();
        let none = vec![false; d_sae];
        for (fr, w) in [
            (vec![0.0625, 0.1875, 0.75], None),
            (vec![0.25, 0.75], Some(vec![0.5])),
        ] {
            for k in [1, 4] {
                let arch = ArchConfig::MatryoshkaBatchTopK {
                    k,
                    auxk_coef: 1.0 / 32.0,
                    k_aux: None,
                    threshold_ema: 0.99,
                    group_fractions: fr.clone(),
                    group_weights: w.clone(),
                    final_weight_scale: 1.0,
                    weight_ramp: [0.0, 1.0],
                };
                compare_sparse(arch.clone(), (d_in, d_sae, rows), &some, 8);
                compare_sparse(arch, (d_in, d_sae, rows), &none, 8);
            }
        }
    }
}

/// The weight ramp's per-step inner weights (`StepContext::prefix_weights`, which override the
/// config's) reach the fast step as they reach autograd, and change the gradients.
#[test]
fn matryoshka_step_weights_match_autograd() {
    let (d_in, d_sae, rows) = (16, 48, 64);
    let some: Vec<bool> = (0..d_sae).map(|j| j % 3 == 0).collect();
    for (fr, w) in [
        (vec![0.0625, 0.1875, 0.75], vec![0.3, 2.0]),
        (vec![0.25, 0.75], vec![0.0]),
    ] {
        let arch = ArchConfig::MatryoshkaBatchTopK {
            k: 4,
            auxk_coef: 1.0 / 32.0,
            k_aux: None,
            threshold_ema: 0.99,
            group_fractions: fr,
            group_weights: None,
            final_weight_scale: 0.5,
            weight_ramp: [0.0, 1.0],
        };
        compare_sparse_weighted(arch.clone(), (d_in, d_sae, rows), &some, 8, Some(&w));
        let (p, x) = random_problem(d_in, d_sae, rows, 5);
        let grads = |pw: Option<&[f64]>| {
            let ctx = StepContext {
                dead: &some,
                sparsity_coef: 0.0,
                target: None,
                prefix_weights: pw,
            };
            run(&mut SparseTopKStep::new(arch.clone(), 8), &x, &p, &ctx)
        };
        let (with, without) = (grads(Some(&w)), grads(None));
        assert_ne!(with.0.loss, without.0.loss, "{w:?}");
        assert_ne!(with.1, without.1, "{w:?}");
    }
}
