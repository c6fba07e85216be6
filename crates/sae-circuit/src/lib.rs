//! Circuits: which tokens and which SAE features produce a prediction.
//!
//! Everything runs through the reference forward of `sae-lm` made differentiable with respect to
//! activations ([`sae_lm::Linearize`]): relevance at a hook is activation x gradient, under LRP's rules
//! (norm scales, nonlinearities and attention patterns frozen: the linearised model) or plain gradients.
//! With SAEs at hook points, the attribution graph holds token, latent, error and target nodes; its edges
//! are direct effects in the linearised model with every node's value held, so an intervention in that
//! model moves every downstream node by exactly what the edges say.

mod error;
mod graph;
mod probe;
mod relevance;
mod target;

pub use error::{CircuitError, Result};
pub use graph::{
    influence, pearson, prune, threshold_score, Adjacency, Check, Effects, Graph, GraphConfig,
    HookedSae, Link, Node, NodeCheck, NodeKind, NodeRef, Pruning, Replacement, Role, EMBED,
};
pub use relevance::{check_input, conservation, relevance, Conservation, Relevance};
pub use target::Target;
