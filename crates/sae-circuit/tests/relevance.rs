//! Gradients through the reference forward on the tiny random GPT-2, Llama and BERT fixtures: the
//! differentiable forward agrees with today's, LRP (identity + CP-LRP + uniform rules) conserves
//! relevance, and gradient x input matches central finite differences taken in the plain (fused) forward.

mod common;

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use common::{fixture, random, rng, IDS};
use sae_circuit::{conservation, relevance, CircuitError, Target};
use sae_lm::{Hook, HookPoint, HookSink, Linearize, Model, Rules};

/// Adds `delta` at one hook and keeps what arrives at another (for finite differences and reads).
struct Nudge {
    at: Hook,
    delta: Tensor,
    read: Option<Hook>,
    got: BTreeMap<Hook, Tensor>,
}

impl HookSink for Nudge {
    fn wants(&self, hook: Hook) -> bool {
        hook == self.at || Some(hook) == self.read
    }
    fn last_layer(&self) -> Option<usize> {
        self.read.map(|h| h.layer)
    }
    fn put(&mut self, hook: Hook, x: &Tensor) -> sae_lm::Result<()> {
        self.got.insert(hook, x.clone());
        Ok(())
    }
    fn edit(&mut self, hook: Hook, x: &Tensor) -> sae_lm::Result<Option<Tensor>> {
        self.got.insert(hook, x.clone());
        Ok((hook == self.at).then(|| x.broadcast_add(&self.delta).unwrap()))
    }
}

fn ids_tensor(ids: &[u32]) -> Tensor {
    Tensor::new(ids, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap()
}

/// The target in the plain forward with `delta` added at `at`.
fn plain_target(model: &Model, at: Hook, delta: &Tensor, target: &Target) -> f64 {
    let read = match target {
        Target::Direction { hook, .. } => Some(*hook),
        _ => None,
    };
    let mut sink = Nudge {
        at,
        delta: delta.clone(),
        read,
        got: BTreeMap::new(),
    };
    let ids = ids_tensor(&IDS);
    let m = match target {
        Target::Direction {
            hook,
            position,
            direction,
        } => {
            model
                .forward_reference(&ids, &[IDS.len()], &mut sink)
                .unwrap();
            let x: Vec<f32> = sink.got[hook]
                .get(0)
                .unwrap()
                .get(*position)
                .unwrap()
                .to_vec1()
                .unwrap();
            x.iter().zip(direction).map(|(a, b)| a * b).sum::<f32>()
        }
        _ => {
            let logits = model.logits_reference(&ids, &mut sink).unwrap();
            target
                .of_logits(&logits, &IDS)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        }
    };
    m as f64
}

fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn differentiable_forward_equals_the_plain_one() {
    for name in ["gpt2", "llama"] {
        let model = fixture(name);
        let ids = ids_tensor(&IDS);
        let plain = model
            .logits_reference(&ids, &mut sae_lm::Capture::new(&[]))
            .unwrap();
        for rules in [Rules::GRADIENT, Rules::LRP, Rules::ATTN_LRP] {
            let mut lin = Linearize::new(rules);
            let mut none = sae_lm::Capture::new(&[]);
            let got = model
                .forward_linear(&ids, &[IDS.len()], &mut none, &mut lin)
                .unwrap()
                .unwrap();
            let d = max_abs(&plain, &got);
            assert!(d < 1e-5, "{name} {rules:?}: max diff {d}");
            // A replayed pass at the same input is the same function value.
            lin.replay();
            let again = model
                .forward_linear(&ids, &[IDS.len()], &mut none, &mut lin)
                .unwrap()
                .unwrap();
            let d = max_abs(&plain, &again);
            assert!(d < 1e-5, "{name} {rules:?} replayed: max diff {d}");
        }
    }
}

#[test]
fn lrp_conserves_relevance_on_gpt2_and_llama() {
    for name in ["gpt2", "llama"] {
        let model = fixture(name);
        let targets = [
            Target::Logit { token: 7 },
            Target::LogitDiff { a: 7, b: 30 },
        ];
        let hooks = [
            Hook::new(0, HookPoint::ResidPre),
            Hook::new(1, HookPoint::ResidPre),
            Hook::new(0, HookPoint::MlpPost),
        ];
        for target in &targets {
            for hook in hooks {
                let c = conservation(&model, &IDS, hook, target).unwrap();
                assert!(
                    c.relative_error() < 1e-3,
                    "{name} {hook} {target:?}: {c:?} (relative error {})",
                    c.relative_error()
                );
                // The bias part is a real share, not a rounding of zero: the check is not vacuous.
                assert!((c.target - c.bias).abs() > 1e-6, "{name} {hook}: {c:?}");
            }
        }
        // Relevance per position at the embeddings sums to the same total.
        let target = &targets[0];
        let hook = Hook::new(0, HookPoint::ResidPre);
        let r = relevance(&model, &IDS, hook, target, Rules::LRP).unwrap();
        let c = conservation(&model, &IDS, hook, target).unwrap();
        let sum: f64 = r.per_position.iter().map(|&v| v as f64).sum();
        assert!(
            (sum - c.relevance).abs() <= 1e-5 * c.relevance.abs().max(1.0),
            "{name}"
        );
        assert_eq!(r.per_position.len(), IDS.len());
        // Plain gradient x input does not conserve: the check tells the rules apart.
        let g = relevance(&model, &IDS, hook, target, Rules::GRADIENT).unwrap();
        let sum: f64 = g.per_position.iter().map(|&v| v as f64).sum();
        let want = c.target - c.bias;
        assert!(
            (sum - want).abs() > 1e-2 * want.abs(),
            "{name}: {sum} vs {want}"
        );
    }
}

/// Central finite difference of the plain forward along a random direction vs gradient . direction.
fn check_fd(model: &Model, hook: Hook, width: usize, target: &Target, seed: u64) {
    let r = relevance(model, &IDS, hook, target, Rules::GRADIENT).unwrap();
    let mut rng = rng(seed);
    // A direction at the activation's own scale, and a step 1e-3 of it.
    let rms = r
        .activation
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap()
        .sqrt()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let v = random(&mut rng, &[IDS.len(), width], 1.0);
    let v = (v * rms as f64).unwrap();
    let eps = 1e-3;
    let plus = plain_target(model, hook, &(&v * eps).unwrap(), target);
    let minus = plain_target(model, hook, &(&v * -eps).unwrap(), target);
    let fd = (plus - minus) / (2.0 * eps);
    let g: f64 = (&r.grad * &v)
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64;
    let tol = 1e-2 * fd.abs().max(g.abs()) + 1e-5;
    assert!(
        (fd - g).abs() <= tol,
        "{hook} {target:?}: fd {fd}, gradient {g}"
    );
    assert!(
        g.abs() > 1e-6,
        "{hook}: the gradient is not trivially zero ({g})"
    );
}

#[test]
fn gradient_times_input_matches_finite_differences() {
    for name in ["gpt2", "llama"] {
        let model = fixture(name);
        let d = model.dims();
        let targets = [Target::Logit { token: 7 }, Target::Loss];
        for (i, target) in targets.iter().enumerate() {
            check_fd(
                &model,
                Hook::new(0, HookPoint::ResidPre),
                d.d_model,
                target,
                1 + i as u64,
            );
            check_fd(
                &model,
                Hook::new(0, HookPoint::MlpPost),
                d.d_mlp,
                target,
                3 + i as u64,
            );
            check_fd(
                &model,
                Hook::new(1, HookPoint::AttnOut),
                d.d_model,
                target,
                5 + i as u64,
            );
        }
    }
}

#[test]
fn bert_gradients_match_finite_differences() {
    let model = fixture("bert");
    let d = model.dims();
    let mut rng = rng(11);
    let direction = common::uniform(&mut rng, d.d_model, 1.0);
    let target = Target::Direction {
        hook: Hook::new(1, HookPoint::ResidPost),
        position: 2,
        direction,
    };
    check_fd(
        &model,
        Hook::new(0, HookPoint::ResidPre),
        d.d_model,
        &target,
        12,
    );
    check_fd(
        &model,
        Hook::new(0, HookPoint::MlpPost),
        d.d_mlp,
        &target,
        13,
    );
}

#[test]
fn bad_input_gets_one_clear_error() {
    let bert = fixture("bert");
    let hook = Hook::new(0, HookPoint::ResidPre);
    let err = relevance(&bert, &IDS, hook, &Target::Logit { token: 1 }, Rules::LRP).unwrap_err();
    assert!(matches!(err, CircuitError::NotCausal { .. }), "{err}");
    assert!(err.to_string().contains("encoder"), "{err}");
    let gpt2 = fixture("gpt2");
    let long = vec![1u32; 40];
    let err = relevance(&gpt2, &long, hook, &Target::Logit { token: 1 }, Rules::LRP).unwrap_err();
    assert!(
        err.to_string().contains("40 tokens") && err.to_string().contains("32"),
        "{err}"
    );
}
