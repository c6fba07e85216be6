//! The attribution graph on the tiny random GPT-2 and Llama fixtures with small random SAEs, checked as
//! circuit-tracer checks its own: in the linearised model with every SAE hook held, doubling a node's
//! value (a latent's a_i W_dec,i, an error vector, a token embedding) moves every latent's pre-activation
//! and the target by exactly the link weight (zero where there is no link).

mod common;

use std::collections::HashMap;

use common::{check_interventions, fixture, random_sae, whole_graph, WholeGraph, IDS};
use sae_circuit::{conservation, GraphConfig, HookedSae, NodeKind, Replacement, Target, EMBED};
use sae_lm::{Hook, HookPoint, Model};
use sae_model::Activation;

fn saes(model: &Model, hooks: &[(Hook, Activation)]) -> Vec<HookedSae> {
    hooks
        .iter()
        .enumerate()
        .map(|(i, &(hook, act))| {
            let d = model.width(hook);
            HookedSae {
                hook,
                sae: random_sae(100 + i as u64, d, 2 * d, act),
            }
        })
        .collect()
}

fn gpt2_saes(model: &Model) -> Vec<HookedSae> {
    saes(
        model,
        &[
            (Hook::new(0, HookPoint::ResidPost), Activation::Relu),
            (Hook::new(1, HookPoint::AttnOut), Activation::TopK { k: 6 }),
            (Hook::new(1, HookPoint::MlpPost), Activation::Relu),
        ],
    )
}

fn llama_saes(model: &Model) -> Vec<HookedSae> {
    saes(
        model,
        &[
            (Hook::new(0, HookPoint::MlpOut), Activation::Relu),
            (Hook::new(1, HookPoint::ResidPre), Activation::TopK { k: 8 }),
            (Hook::new(1, HookPoint::MlpPost), Activation::Relu),
        ],
    )
}

#[test]
fn doubling_a_node_moves_downstream_nodes_by_the_link_weights_gpt2() {
    let model = fixture("gpt2");
    let saes = gpt2_saes(&model);
    check_interventions("gpt2 logit", &model, &saes, Target::Logit { token: 7 });
    check_interventions(
        "gpt2 diff",
        &model,
        &saes,
        Target::LogitDiff { a: 7, b: 30 },
    );
}

#[test]
fn doubling_a_node_moves_downstream_nodes_by_the_link_weights_llama() {
    let model = fixture("llama");
    let saes = llama_saes(&model);
    check_interventions("llama logit", &model, &saes, Target::Logit { token: 7 });
}

#[test]
fn node_attributions_add_up_and_pruning_keeps_the_share() {
    let model = fixture("gpt2");
    let saes = gpt2_saes(&model);
    let target = Target::Logit { token: 7 };
    let mut rep = Replacement::new(&model, &IDS, &target, &saes).unwrap();
    let nodes = rep.all_nodes().unwrap();
    // Tokens: LRP relevance at the embeddings.
    let tokens: f64 = nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Token)
        .map(|n| n.attribution as f64)
        .sum();
    let c = conservation(&model, &IDS, EMBED, &target).unwrap();
    assert!(
        (tokens - c.relevance).abs() <= 1e-4 * c.relevance.abs().max(1.0),
        "{tokens} vs {c:?}"
    );
    // At each SAE hook: latents + error + b_dec's share = gradient x input at that hook.
    for (i, s) in saes.iter().enumerate() {
        let at: f64 = nodes
            .iter()
            .filter(|n| n.hook.as_deref() == Some(&s.hook.name()))
            .map(|n| n.attribution as f64)
            .sum();
        let b_dec: Vec<f32> = s.sae.b_dec.to_vec1().unwrap();
        let r =
            sae_circuit::relevance(&model, &IDS, s.hook, &target, sae_lm::Rules::GRADIENT).unwrap();
        let total: f64 = r.per_position.iter().map(|&v| v as f64).sum();
        let g: Vec<f32> = r.grad.sum(0).unwrap().to_vec1().unwrap();
        let bias: f64 = b_dec.iter().zip(&g).map(|(b, g)| (b * g) as f64).sum();
        assert!(
            (at + bias - total).abs() <= 1e-4 * total.abs().max(1.0),
            "SAE {i} at {}: {at} + {bias} vs {total}",
            s.hook,
        );
    }
    let graph = rep.graph(&GraphConfig::default()).unwrap();
    let all = nodes
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::Latent | NodeKind::Error))
        .count();
    let kept = graph
        .nodes
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::Latent | NodeKind::Error))
        .count();
    assert!(kept < all && kept > 0, "pruning kept {kept} of {all}");
    assert!(
        graph.node_influence_share >= 0.8,
        "{}",
        graph.node_influence_share
    );
    assert!(
        graph.edge_influence_share >= 0.98,
        "{}",
        graph.edge_influence_share
    );
    assert_eq!(graph.candidate_nodes, all);
    assert!(graph.links.iter().all(|l| l.weight != 0.0));
    // Every kept latent has a kept link in and out, every error a link out; tokens and the target stay.
    let has = |id: &str, out: bool| {
        graph
            .links
            .iter()
            .any(|l| if out { l.source == id } else { l.target == id })
    };
    for n in &graph.nodes {
        match n.kind {
            NodeKind::Latent => assert!(has(&n.id, true) && has(&n.id, false), "{}", n.id),
            NodeKind::Error => assert!(has(&n.id, true), "{}", n.id),
            _ => {}
        }
    }
    let tokens = graph
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Token)
        .count();
    assert_eq!(tokens, IDS.len());
    assert_eq!(graph.nodes.last().unwrap().kind, NodeKind::Target);
    // The kept nodes' influence, recomputed here from the full graph's links by the series summed
    // as a dense matrix power sum, matches what the graph reports.
    let full = rep
        .graph(&GraphConfig {
            node_threshold: 1.0,
            edge_threshold: 1.0,
            ..GraphConfig::default()
        })
        .unwrap();
    let dense = dense_influence(&full);
    for n in &graph.nodes {
        let want = dense[&n.id];
        assert!(
            (n.influence as f64 - want).abs() <= 1e-5 * want.abs().max(1.0),
            "{}: {} vs {want}",
            n.id,
            n.influence
        );
    }
    eprintln!(
        "gpt2: {kept} of {all} latent/error nodes kept, node influence share {:.4}, edge share {:.4}, {} links",
        graph.node_influence_share,
        graph.edge_influence_share,
        graph.links.len()
    );
}

/// Influence on the target of every node: the target row of (I - A)^-1 - I with A the row-normalised
/// |link weights|, by solving (I - A^T) x = e_target densely (Gauss-Jordan), x - e_target.
fn dense_influence(g: &sae_circuit::Graph) -> HashMap<String, f64> {
    let ids: Vec<&str> = g.nodes.iter().map(|n| n.id.as_str()).collect();
    let n = ids.len();
    let at: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, &s)| (s, i)).collect();
    let mut a = vec![vec![0f64; n]; n];
    for l in &g.links {
        a[at[l.target.as_str()]][at[l.source.as_str()]] += (l.weight as f64).abs();
    }
    for row in a.iter_mut() {
        let s: f64 = row.iter().sum::<f64>().max(1e-10);
        row.iter_mut().for_each(|v| *v /= s);
    }
    // m = I - A^T, augmented with e_target.
    let t = at["target"];
    let mut m: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let mut r: Vec<f64> = (0..n).map(|j| (i == j) as u8 as f64 - a[j][i]).collect();
            r.push((i == t) as u8 as f64);
            r
        })
        .collect();
    for c in 0..n {
        let p = (c..n)
            .max_by(|&x, &y| m[x][c].abs().total_cmp(&m[y][c].abs()))
            .unwrap();
        m.swap(c, p);
        let d = m[c][c];
        m[c].iter_mut().for_each(|v| *v /= d);
        for r in 0..n {
            if r != c && m[r][c] != 0.0 {
                let f = m[r][c];
                let pivot = m[c].clone();
                m[r].iter_mut().zip(&pivot).for_each(|(v, p)| *v -= f * p);
            }
        }
    }
    ids.iter()
        .enumerate()
        .map(|(i, &s)| (s.to_string(), m[i][n] - (i == t) as u8 as f64))
        .collect()
}

#[test]
fn ablations_in_the_real_forward_follow_the_attributions() {
    for (name, target) in [
        ("gpt2", Target::Logit { token: 7 }),
        ("llama", Target::LogitDiff { a: 7, b: 30 }),
    ] {
        let model = fixture(name);
        let saes = if name == "gpt2" {
            gpt2_saes(&model)
        } else {
            llama_saes(&model)
        };
        let WholeGraph { mut rep, check } = whole_graph(name, &model, &saes, &target);
        assert!(
            (check.m_full - check.m_empty).abs() > 1e-4,
            "{name}: ablating everything did nothing"
        );
        assert!(
            check.pearson_zero > 0.5 && check.pearson_mean > 0.5,
            "{name}: {check:?}"
        );
        eprintln!(
            "{name}: r zero {:.4}, r mean {:.4}, m(M) {:.4}, m(0) {:.4}",
            check.pearson_zero, check.pearson_mean, check.m_full, check.m_empty
        );
        let pruned = rep.graph(&GraphConfig::default()).unwrap();
        let c = rep.check(&pruned, 10).unwrap();
        assert!(c.faithfulness.is_finite() && c.circuit_nodes < check.circuit_nodes);
        eprintln!(
            "{name}: pruned circuit of {} of {} nodes, faithfulness {:.4}, node influence share {:.4}",
            c.circuit_nodes, pruned.candidate_nodes, c.faithfulness, pruned.node_influence_share
        );
    }
}
