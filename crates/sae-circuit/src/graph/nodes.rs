//! Nodes and their attributions (total effects on the target in the linearised model), and node pruning.

use candle_core::Tensor;

use super::{Node, NodeKind, NodeRef, Replacement};
use crate::error::Result;

/// Row norms of [t, d] -> [t].
fn row_norms(x: &Tensor) -> Result<Vec<f32>> {
    Ok(x.sqr()?.sum(1)?.sqrt()?.to_vec1()?)
}

/// Row dot products of two [t, d] -> [t].
fn row_dots(a: &Tensor, b: &Tensor) -> Result<Vec<f32>> {
    Ok((a * b)?.sum(1)?.to_vec1()?)
}

impl Replacement<'_> {
    /// The node `r` as written to the graph.
    pub(crate) fn node(&self, r: NodeRef, activation: f32, attribution: f32) -> Node {
        let hook = |sae: usize| self.saes[sae].hook;
        let (id, kind, hook_of, latent, token) = match r {
            NodeRef::Token { position } => (
                format!("tok@{position}"),
                NodeKind::Token,
                None,
                None,
                Some(self.ids[position]),
            ),
            NodeRef::Latent {
                sae,
                position,
                latent,
            } => (
                format!("{}/{latent}@{position}", hook(sae)),
                NodeKind::Latent,
                Some(hook(sae)),
                Some(latent),
                None,
            ),
            NodeRef::Error { sae, position } => (
                format!("{}/error@{position}", hook(sae)),
                NodeKind::Error,
                Some(hook(sae)),
                None,
                None,
            ),
            NodeRef::Target => ("target".into(), NodeKind::Target, None, None, None),
        };
        let position = match r {
            NodeRef::Token { position }
            | NodeRef::Latent { position, .. }
            | NodeRef::Error { position, .. } => position,
            NodeRef::Target => self.ids.len() - 1,
        };
        let layer = match r {
            NodeRef::Target => Some(self.model.dims().n_layers),
            _ => hook_of.map(|h| h.layer),
        };
        Node {
            id,
            kind,
            hook: hook_of.map(|h| h.name()),
            layer,
            position,
            latent,
            token,
            activation,
            attribution,
            influence: 0.0,
            explanation: None,
            node: r,
        }
    }

    /// Every node before pruning: tokens, each SAE's active latents and errors (hook by hook, position by
    /// position, from the first position not skipped), the target last.
    pub fn all_nodes(&self) -> Result<Vec<Node>> {
        let mut out = Vec::new();
        let norms = row_norms(&self.x0)?;
        for (position, a) in row_dots(&self.x0, &self.grad0)?.into_iter().enumerate() {
            out.push(self.node(NodeRef::Token { position }, norms[position], a));
        }
        for (sae, st) in self.states.iter().enumerate() {
            let g = &self.grads[sae];
            // a_i (g . W_dec,i) for every (position, latent).
            let gw = self.decoder_dots(sae, g)?;
            let acts: Vec<Vec<f32>> = st.acts.to_vec2()?;
            for (position, (row, grow)) in acts.iter().zip(&gw).enumerate().skip(self.skip) {
                for (latent, (&a, &gd)) in row.iter().zip(grow).enumerate() {
                    if a != 0.0 {
                        let r = NodeRef::Latent {
                            sae,
                            position,
                            latent,
                        };
                        out.push(self.node(r, a, a * gd));
                    }
                }
            }
            let norms = row_norms(&st.err)?;
            for (position, e) in row_dots(&st.err, g)?
                .into_iter()
                .enumerate()
                .skip(self.skip)
            {
                out.push(self.node(NodeRef::Error { sae, position }, norms[position], e));
            }
        }
        let m = self.target_value;
        out.push(self.node(NodeRef::Target, m, m));
        Ok(out)
    }
}

/// Keeps tokens and the target, and the `max` latent and error nodes of largest |attribution| (the
/// candidates of the graph, sorted by decreasing |attribution|).
pub(crate) fn candidates(nodes: Vec<Node>, max: usize) -> Vec<Node> {
    let (fixed, mut scored): (Vec<Node>, Vec<Node>) = nodes
        .into_iter()
        .partition(|n| matches!(n.kind, NodeKind::Token | NodeKind::Target));
    scored.sort_by(|a, b| b.attribution.abs().total_cmp(&a.attribution.abs()));
    scored.truncate(max);
    let (tokens, target): (Vec<Node>, Vec<Node>) =
        fixed.into_iter().partition(|n| n.kind == NodeKind::Token);
    tokens.into_iter().chain(scored).chain(target).collect()
}
