//! The attribution graph of one prompt with SAEs at hook points.
//!
//! The linearised model: norm scales, nonlinearities and attention patterns frozen at the clean pass
//! (every rule of [`sae_lm::Rules::LRP`]). Nodes: tokens (the embeddings at `blocks.0.hook_resid_pre`), the
//! active latents of each SAE at each position, one error node per (hook, position) = x - x_hat, and the
//! target. A latent's attribution is a_i (grad_x m . W_dec,i), an error's grad_x m . (x - x_hat), with the
//! plain gradient at the hook (attribution patching: the first-order effect of ablating the node in the real
//! model); a token's is its LRP relevance x . grad_x m in the linearised model (conserved: the tokens' sum is
//! the target minus the biases' share).
//! Edges are direct effects: with every hook that holds an SAE set to its value (its latents and error held,
//! so no path runs through another node), the effect of a source node's value on a downstream latent's
//! pre-activation, or on the target. Doubling a source's value in that model moves every downstream node
//! by exactly its edge weight ([`Replacement::intervene`]). SAE input normalization is frozen at the
//! clean pass too, a skip connection's output belongs to the error node, and an SAE at the embeddings
//! takes the tokens as its input (see `frozen.rs`); a transcoder at `blocks.L.ln2.hook_normalized` replaces
//! the MLP, its latents written at `blocks.L.hook_mlp_out` (see `hooks.rs`); hook_z SAEs are refused.

mod build;
mod check;
mod edges;
mod frozen;
mod hooks;
mod intervene;
mod nodes;
mod prune;

use candle_core::{backprop::GradStore, Tensor};
use sae_lm::{Hook, HookPoint, Linearize, Model, Rules};
use sae_model::{RowScale, Sae};
use serde::Serialize;

use crate::error::Result;
use crate::probe::{Leaf, Probe};
use crate::relevance::run;
use crate::target::Target;

pub use check::{pearson, Check, NodeCheck};
pub use intervene::Effects;
pub use prune::{influence, prune, threshold_score, Adjacency, Pruning, Role};

/// Where the token embeddings are read: the residual stream entering block 0.
pub const EMBED: Hook = Hook {
    layer: 0,
    point: HookPoint::ResidPre,
};

/// An SAE at its hook point.
#[derive(Debug, Clone)]
pub struct HookedSae {
    /// The hook it reads and is spliced at.
    pub hook: Hook,
    /// The SAE.
    pub sae: Sae,
}

/// Pruning by influence on the target, as circuit-tracer prunes (see [`prune`]): the `max_nodes` latent
/// and error nodes of largest |attribution| are the candidates; their links make the adjacency matrix;
/// nodes are kept until they carry `node_threshold` of the total influence (tokens and the target always
/// kept), then links until they carry `edge_threshold` of the total edge influence. 1.0 keeps everything.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GraphConfig {
    /// Share of the total influence the kept nodes carry.
    pub node_threshold: f64,
    /// Share of the total edge influence the kept links carry.
    pub edge_threshold: f64,
    /// Latent and error nodes (by |attribution|) whose links are computed: one backward pass each.
    pub max_nodes: usize,
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig {
            node_threshold: 0.8,
            edge_threshold: 0.98,
            max_nodes: 1024,
        }
    }
}

/// A node of the graph, by what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeRef {
    /// The embedding at a position.
    Token {
        /// Position.
        position: usize,
    },
    /// Latent `latent` of SAE `sae` (index into the SAEs given) at a position.
    Latent {
        /// Which SAE.
        sae: usize,
        /// Position.
        position: usize,
        /// Latent index.
        latent: usize,
    },
    /// The reconstruction error of SAE `sae` at a position.
    Error {
        /// Which SAE.
        sae: usize,
        /// Position.
        position: usize,
    },
    /// The target.
    Target,
}

/// What a node is, in the graph JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A token's embedding.
    Token,
    /// An SAE latent.
    Latent,
    /// An SAE's reconstruction error.
    Error,
    /// The target.
    Target,
}

/// A node, as written to the graph JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    /// Unique id (links refer to it).
    pub id: String,
    /// What it is.
    pub kind: NodeKind,
    /// The hook (latent and error nodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    /// The block (latent and error nodes; the last block + 1 for the target; absent for tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<usize>,
    /// The position (the last one for the target).
    pub position: usize,
    /// The latent index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latent: Option<usize>,
    /// The token id (token nodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<u32>,
    /// The latent's activation; the norm of an error or embedding vector; the target's value.
    pub activation: f32,
    /// Effect on the target: see the module docs (the target: its value).
    pub attribution: f32,
    /// Influence on the target through every path of the graph (row-normalised |link weights|).
    pub influence: f32,
    /// The latent's explanation from its report, when the caller has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
    /// What the node is, in the program.
    #[serde(skip)]
    pub node: NodeRef,
}

/// A direct effect of one node on another.
#[derive(Debug, Clone, Serialize)]
pub struct Link {
    /// The source node's id.
    pub source: String,
    /// The target node's id.
    pub target: String,
    /// The change of the target node (a latent's pre-activation, or the target) the source's whole value
    /// makes in the linearised model with every other node held.
    pub weight: f32,
}

/// The pruned attribution graph.
#[derive(Debug, Clone, Serialize)]
pub struct Graph {
    /// The nodes kept: tokens, latents and errors by decreasing influence, the target last.
    pub nodes: Vec<Node>,
    /// The links kept, by decreasing |weight|.
    pub links: Vec<Link>,
    /// The target's value.
    pub target_value: f32,
    /// Latent and error nodes before pruning.
    pub candidate_nodes: usize,
    /// Latent and error nodes whose links were computed (the `max_nodes` of largest |attribution|).
    pub scored_nodes: usize,
    /// Share of the total influence on the target the nodes kept by the node threshold carry.
    pub node_influence_share: f64,
    /// Share of the total edge influence the links kept by the edge threshold carry.
    pub edge_influence_share: f64,
}

/// One SAE's clean state: what continues from its output hook, its latents and error, [t, ...] each.
#[derive(Debug, Clone)]
pub(crate) struct HookState {
    /// What continues from its output hook: x for an autoencoder, the MLP's output for a transcoder.
    pub value: Tensor,
    pub acts: Tensor,
    /// x - restore(decode(acts)): the error and, with a skip connection, its x W_skip.
    pub err: Tensor,
    /// The input normalization's row statistics in the clean pass (frozen).
    pub scale: RowScale,
}

/// The linearised model of one prompt with SAEs spliced in (frozen at its clean pass).
pub struct Replacement<'a> {
    model: &'a Model,
    ids: Vec<u32>,
    target: Target,
    saes: &'a [HookedSae],
    lin: Linearize,
    /// The embeddings [t, d].
    x0: Tensor,
    states: Vec<HookState>,
    /// The linearised model's gradient of the target at the embeddings (LRP: token relevance) [t, d].
    grad0: Tensor,
    /// The plain gradient of the target at each SAE's output hook, [t, width] (node attributions).
    grads: Vec<Tensor>,
    target_value: f32,
    /// Leading positions (BOS) that hold no latent or error node and are never ablated.
    skip: usize,
}

/// The gradient [t, width] at a probe's leaf (zeros where the target does not depend on it).
fn leaf_grad(grads: &GradStore, probe: &Probe, hook: Hook) -> Result<Tensor> {
    let v = probe.vars[&hook].as_tensor();
    Ok(match grads.get(v) {
        Some(g) => g.get(0)?,
        None => v.get(0)?.zeros_like()?,
    })
}

impl<'a> Replacement<'a> {
    /// The clean pass: frozen values recorded, SAE latents and errors taken, total gradients of the target.
    pub fn new(
        model: &'a Model,
        ids: &[u32],
        target: &Target,
        saes: &'a [HookedSae],
    ) -> Result<Replacement<'a>> {
        hooks::check_saes(model, saes)?;
        let mut lin = Linearize::new(Rules::LRP);
        let mut leaves = hooks::leaves(saes, Leaf::Through);
        leaves.entry(EMBED).or_insert(Leaf::Cut);
        let pass = run(model, ids, target, &mut lin, leaves)?;
        let lrp = pass.m.backward()?;
        let mut states = Vec::with_capacity(saes.len());
        for s in saes {
            let x = pass.probe.incoming[&s.hook].get(0)?.detach();
            let value = pass.probe.incoming[&s.output()].get(0)?.detach();
            let (_, scale) = s.sae.normalize(&x)?;
            let acts = s.sae.encode(&x)?;
            let err = (&value - s.sae.decode_for_input(&acts, &x)?)?;
            states.push(HookState {
                value,
                acts,
                err,
                scale,
            });
        }
        // Node attributions take the plain gradient (attribution patching: the first-order prediction of
        // an ablation in the real model); the frozen model's gradient would miss what the norms undo.
        let mut plain = Linearize::new(Rules::GRADIENT);
        let leaves = hooks::leaves(saes, Leaf::Through);
        let real = run(model, ids, target, &mut plain, leaves)?;
        let real_grads = real.m.backward()?;
        let grads = saes
            .iter()
            .map(|s| leaf_grad(&real_grads, &real.probe, s.output()))
            .collect::<Result<_>>()?;
        lin.replay();
        Ok(Replacement {
            model,
            ids: ids.to_vec(),
            target: target.clone(),
            saes,
            lin,
            x0: pass.probe.incoming[&EMBED].get(0)?.detach(),
            states,
            grad0: leaf_grad(&lrp, &pass.probe, EMBED)?,
            grads,
            target_value: pass.m.to_scalar()?,
            skip: 0,
        })
    }

    /// Leaves the first `n` positions (the BOS the tokenizer puts first: its residual is the same in every
    /// prompt and far larger than the rest) without latent or error nodes; the check never ablates them.
    pub fn skip_prefix(&mut self, n: usize) {
        self.skip = n;
    }

    /// The target's value in the clean pass.
    pub fn target_value(&self) -> f32 {
        self.target_value
    }

    /// The SAEs' hooks, in the order given.
    pub fn hooks(&self) -> Vec<Hook> {
        self.saes.iter().map(|s| s.hook).collect()
    }
}
