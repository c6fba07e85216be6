//! The attribution graph through the SAEs users have beyond plain ones: input-normalised (layer_norm,
//! constant_norm_rescale), with a skip connection, at the token embeddings, and transcoders in place of
//! an MLP; checked by the same doubling test as plain SAEs, and in the real forward.

mod common;

use common::{check_interventions, fixture, random, random_sae, rng, whole_graph, WholeGraph, IDS};
use sae_circuit::{GraphConfig, HookedSae, Replacement, Target, EMBED};
use sae_lm::{Hook, HookPoint, Model};
use sae_model::{Activation, InputNorm, Sae};

/// The SAEs a user has beyond plain ones: input-normalised (layer_norm, constant_norm_rescale), with a
/// skip connection, and at the token embeddings (`blocks.0.hook_resid_pre`).
#[derive(Clone, Copy)]
enum Variant {
    Plain,
    LayerNorm,
    Rescale,
    Skip,
}

fn variant_sae(model: &Model, seed: u64, hook: Hook, act: Activation, v: Variant) -> HookedSae {
    let d = model.width(hook);
    let base = random_sae(seed, d, 2 * d, act);
    let mut cfg = base.cfg.clone();
    let mut w_skip = None;
    match v {
        Variant::Plain => {}
        Variant::LayerNorm => cfg.normalize_activations = InputNorm::LayerNorm,
        Variant::Rescale => cfg.normalize_activations = InputNorm::ConstantNormRescale,
        Variant::Skip => w_skip = Some(random(&mut rng(seed + 1), &[d, d], 0.2)),
    }
    let sae = Sae::with_parts(
        cfg, base.w_enc, base.b_enc, base.w_dec, base.b_dec, None, None, w_skip,
    )
    .unwrap();
    HookedSae { hook, sae }
}

fn variant_saes(model: &Model, llama: bool) -> Vec<HookedSae> {
    let h = Hook::new;
    let spec = if llama {
        [
            (EMBED, Activation::Relu, Variant::Rescale),
            (h(0, HookPoint::MlpOut), Activation::Relu, Variant::Skip),
            (
                h(1, HookPoint::ResidPre),
                Activation::TopK { k: 8 },
                Variant::LayerNorm,
            ),
        ]
    } else {
        [
            (EMBED, Activation::Relu, Variant::LayerNorm),
            (
                h(0, HookPoint::ResidPost),
                Activation::TopK { k: 6 },
                Variant::Rescale,
            ),
            (h(1, HookPoint::MlpPost), Activation::Relu, Variant::Skip),
        ]
    };
    spec.iter()
        .enumerate()
        .map(|(i, &(hook, act, v))| variant_sae(model, 200 + i as u64, hook, act, v))
        .collect()
}

#[test]
fn normalised_skip_and_embedding_saes_keep_the_links_exact() {
    for (name, llama) in [("gpt2", false), ("llama", true)] {
        let model = fixture(name);
        let saes = variant_saes(&model, llama);
        check_interventions(
            &format!("{name} norm/skip/embed"),
            &model,
            &saes,
            Target::Logit { token: 7 },
        );
        // Frozen statistics taken from the rows themselves give the live pre-activations.
        for s in &saes {
            let x = random(&mut rng(5), &[4, s.sae.d_in()], 2.0);
            let (_, scale) = s.sae.normalize(&x).unwrap();
            let a: Vec<Vec<f32>> = s.sae.pre_acts(&x).unwrap().to_vec2().unwrap();
            let b: Vec<Vec<f32>> = s.sae.pre_acts_with(&x, &scale).unwrap().to_vec2().unwrap();
            assert_eq!(a, b);
        }
        // In the real forward: the whole graph as the circuit is the model; zero ablations follow the
        // attributions.
        let target = Target::Logit { token: 7 };
        let WholeGraph { mut rep, check } = whole_graph(name, &model, &saes, &target);
        let pruned = rep.graph(&GraphConfig::default()).unwrap();
        let c = rep.check(&pruned, 10).unwrap();
        assert!(c.faithfulness.is_finite() && c.circuit_nodes < check.circuit_nodes);
        eprintln!(
            "{name} norm/skip/embed: r zero {:.4}, r mean {:.4}; pruned circuit of {} of {} nodes, \
             faithfulness {:.4}",
            check.pearson_zero,
            check.pearson_mean,
            c.circuit_nodes,
            pruned.candidate_nodes,
            c.faithfulness
        );
    }
}

/// A random transcoder from the MLP's input to its output (d_out set, b_dec not applied to the input),
/// with a skip connection when asked.
fn transcoder(model: &Model, seed: u64, layer: usize, skip: bool) -> HookedSae {
    let hook = Hook::new(layer, HookPoint::MlpIn);
    let d = model.width(hook);
    let base = random_sae(seed, d, 2 * d, Activation::Relu);
    let mut cfg = base.cfg.clone();
    cfg.d_out = Some(model.width(Hook::new(layer, HookPoint::MlpOut)));
    cfg.apply_b_dec_to_input = false;
    let w_skip = skip.then(|| random(&mut rng(seed + 1), &[d, d], 0.2));
    let sae = Sae::with_parts(
        cfg, base.w_enc, base.b_enc, base.w_dec, base.b_dec, None, None, w_skip,
    )
    .unwrap();
    HookedSae { hook, sae }
}

#[test]
fn transcoders_keep_the_links_exact_and_splice_into_the_real_forward() {
    for name in ["gpt2", "llama"] {
        let model = fixture(name);
        let saes = vec![
            transcoder(&model, 400, 0, false),
            variant_sae(
                &model,
                401,
                Hook::new(0, HookPoint::ResidPost),
                Activation::TopK { k: 6 },
                Variant::Plain,
            ),
            transcoder(&model, 402, 1, true),
        ];
        assert_eq!(saes[2].output(), Hook::new(1, HookPoint::MlpOut));
        check_interventions(
            &format!("{name} transcoders"),
            &model,
            &saes,
            Target::Logit { token: 7 },
        );
        let target = Target::Logit { token: 7 };
        let WholeGraph { check, .. } = whole_graph(name, &model, &saes, &target);
        assert!((check.m_full - check.m_empty).abs() > 1e-4, "{name}");
        eprintln!(
            "{name} transcoders: r zero {:.4}, r mean {:.4}",
            check.pearson_zero, check.pearson_mean
        );
    }
}

#[test]
fn what_stays_unsupported_gets_one_clear_error() {
    let model = fixture("gpt2");
    let hook = Hook::new(0, HookPoint::ResidPost);
    let mut s = variant_sae(&model, 300, hook, Activation::Relu, Variant::Plain);
    s.sae.cfg.reshape_activations = sae_model::Reshape::HookZ;
    let saes = [s];
    let err = Replacement::new(&model, &IDS, &Target::Logit { token: 7 }, &saes)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("blocks.0.hook_resid_post") && err.contains("hook_z"),
        "{err}"
    );
}
