//! Links: direct effects in the linearised model with every SAE hook cut (its value a gradient leaf), one
//! backward pass per downstream latent node and one for the target.

use std::collections::BTreeMap;

use candle_core::{backprop::GradStore, Tensor};
use sae_lm::Hook;

use super::{Link, Node, NodeRef, Replacement, EMBED};
use crate::error::Result;
use crate::probe::Leaf;
use crate::relevance::run;

/// The kept source nodes at one leaf (the embeddings or one SAE's hook).
struct Sources<'n> {
    hook: Hook,
    /// SAE index, None for the embeddings.
    sae: Option<usize>,
    nodes: Vec<&'n Node>,
}

impl Replacement<'_> {
    /// Every nonzero direct effect between kept nodes (sources: tokens, latents, errors; targets: latents
    /// at a later hook, and the target).
    pub(crate) fn links(&mut self, nodes: &[Node]) -> Result<Vec<Link>> {
        let mut leaves = BTreeMap::from([(EMBED, Leaf::Cut)]);
        leaves.extend(self.saes.iter().map(|s| (s.hook, Leaf::Cut)));
        let pass = run(self.model, &self.ids, &self.target, &mut self.lin, leaves)?;
        let pre = self
            .saes
            .iter()
            .map(|s| Ok(s.sae.pre_acts(&pass.probe.incoming[&s.hook].get(0)?)?))
            .collect::<Result<Vec<Tensor>>>()?;
        let mut groups = vec![Sources {
            hook: EMBED,
            sae: None,
            nodes: Vec::new(),
        }];
        groups.extend(self.saes.iter().enumerate().map(|(i, s)| Sources {
            hook: s.hook,
            sae: Some(i),
            nodes: Vec::new(),
        }));
        for n in nodes {
            match n.node {
                NodeRef::Token { .. } => groups[0].nodes.push(n),
                NodeRef::Latent { sae, .. } | NodeRef::Error { sae, .. } => {
                    groups[sae + 1].nodes.push(n)
                }
                NodeRef::Target => {}
            }
        }
        let mut links = Vec::new();
        for down in nodes {
            let (scalar, before) = match down.node {
                NodeRef::Latent {
                    sae,
                    position,
                    latent,
                } => (
                    pre[sae].get(position)?.get(latent)?,
                    Some(self.saes[sae].hook),
                ),
                NodeRef::Target => (pass.m.clone(), None),
                _ => continue,
            };
            let grads = scalar.backward()?;
            for g in groups.iter().filter(|g| before.is_none_or(|b| g.hook < b)) {
                let Some(grad) = grads_at(&grads, &pass.probe.vars[&g.hook])? else {
                    continue;
                };
                for (source, weight) in self.effects(g, &grad)? {
                    if weight != 0.0 {
                        links.push(Link {
                            source: source.to_string(),
                            target: down.id.clone(),
                            weight,
                        });
                    }
                }
            }
        }
        Ok(links)
    }

    /// The direct effect of each source at one leaf given the gradient there [t, width].
    fn effects<'n>(&self, g: &Sources<'n>, grad: &Tensor) -> Result<Vec<(&'n str, f32)>> {
        let dots = |x: &Tensor| -> Result<Vec<f32>> { Ok((x * grad)?.sum(1)?.to_vec1()?) };
        let mut out = Vec::with_capacity(g.nodes.len());
        match g.sae {
            None => {
                let d = dots(&self.x0)?;
                for n in &g.nodes {
                    out.push((n.id.as_str(), d[n.position]));
                }
            }
            Some(sae) => {
                let st = &self.states[sae];
                let err = dots(&st.err)?;
                let gw: Vec<Vec<f32>> = grad.matmul(&self.saes[sae].sae.w_dec.t()?)?.to_vec2()?;
                for n in &g.nodes {
                    let w = match n.node {
                        NodeRef::Latent {
                            position, latent, ..
                        } => n.activation * gw[position][latent],
                        _ => err[n.position],
                    };
                    out.push((n.id.as_str(), w));
                }
            }
        }
        Ok(out)
    }
}

/// The gradient [t, width] at a leaf, None when the scalar does not depend on it.
fn grads_at(grads: &GradStore, var: &candle_core::Var) -> Result<Option<Tensor>> {
    Ok(match grads.get(var.as_tensor()) {
        Some(g) => Some(g.get(0)?),
        None => None,
    })
}
