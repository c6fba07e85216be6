//! Links: direct effects in the linearised model with every SAE hook cut (its value a gradient leaf), one
//! backward pass per downstream latent node and one for the target.

use candle_core::{backprop::GradStore, Tensor};
use sae_lm::Hook;

use super::{hooks, Link, Node, NodeRef, Replacement, EMBED};
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
        let mut leaves = hooks::leaves(self.saes, Leaf::Cut);
        leaves.entry(EMBED).or_insert(Leaf::Cut);
        let pass = run(self.model, &self.ids, &self.target, &mut self.lin, leaves)?;
        // With an SAE at the embeddings, the tokens are its input (their own leaf); the hook's value
        // downstream is that SAE's nodes.
        let embed = self.embed_sae();
        let tokens = embed.map(|_| self.token_leaf()).transpose()?;
        let pre = (0..self.saes.len())
            .map(|i| {
                let x = match (&tokens, embed == Some(i)) {
                    (Some(v), true) => v.as_tensor().get(0)?,
                    _ => pass.probe.incoming[&self.saes[i].hook].get(0)?,
                };
                self.frozen_pre_acts(i, &x)
            })
            .collect::<Result<Vec<Tensor>>>()?;
        let token_var = tokens.as_ref().unwrap_or(&pass.probe.vars[&EMBED]);
        let mut groups = vec![Sources {
            hook: EMBED,
            sae: None,
            nodes: Vec::new(),
        }];
        groups.extend(self.saes.iter().enumerate().map(|(i, s)| Sources {
            hook: s.output(),
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
            let earlier = |g: &&Sources| g.sae.is_none() || before.is_none_or(|b| g.hook < b);
            for g in groups.iter().filter(earlier) {
                let var = match g.sae {
                    None => token_var,
                    Some(_) => &pass.probe.vars[&g.hook],
                };
                let Some(grad) = grads_at(&grads, var)? else {
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
                let gw = self.decoder_dots(sae, grad)?;
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
