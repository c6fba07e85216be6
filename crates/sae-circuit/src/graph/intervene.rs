//! Interventions in the linearised model with every SAE hook held at its clean value: the check of the
//! links (a node's value doubled moves each downstream node by the link weight).

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use sae_lm::Hook;

use super::{NodeRef, Replacement, EMBED};
use crate::error::{CircuitError, Result};
use crate::probe::Leaf;
use crate::relevance::run;

/// What an intervention changed, against the same model without it.
#[derive(Debug, Clone)]
pub struct Effects {
    /// The change of the target.
    pub target: f32,
    /// The change of each SAE's pre-activations [t, d_sae], SAEs in the order given.
    pub pre_acts: Vec<Tensor>,
}

/// The target and each SAE's pre-activations of one held pass.
struct Held {
    target: f32,
    pre_acts: Vec<Tensor>,
}

impl Replacement<'_> {
    /// A node's value at its hook and position: a_i W_dec,i for a latent, x - x_hat for an error, the
    /// embedding for a token. -> (hook, position, vector [width])
    pub fn node_vector(&self, r: NodeRef) -> Result<(Hook, usize, Tensor)> {
        Ok(match r {
            NodeRef::Token { position } => (EMBED, position, self.x0.get(position)?),
            NodeRef::Latent {
                sae,
                position,
                latent,
            } => (
                self.saes[sae].output(),
                position,
                self.latent_vector(sae, position, latent)?,
            ),
            NodeRef::Error { sae, position } => (
                self.saes[sae].output(),
                position,
                self.states[sae].err.get(position)?,
            ),
            NodeRef::Target => {
                return Err(CircuitError::Invalid(
                    "the target is not a source node".into(),
                ))
            }
        })
    }

    /// Adds `scale` x the node's value at its hook and position (scale 1: the node's value doubled) in
    /// the linearised model with every SAE hook held at its clean value, and returns what moved.
    pub fn intervene(&mut self, r: NodeRef, scale: f64) -> Result<Effects> {
        let (hook, position, v) = self.node_vector(r)?;
        let base = self.held(None)?;
        let delta = Delta {
            hook,
            position,
            v: (v * scale)?,
            // With an SAE at the embeddings, a token's value is that SAE's input, not the hook's.
            input: matches!(r, NodeRef::Token { .. }) && self.embed_sae().is_some(),
        };
        let moved = self.held(Some(delta))?;
        let pre_acts = moved
            .pre_acts
            .iter()
            .zip(&base.pre_acts)
            .map(|(a, b)| Ok((a - b)?))
            .collect::<Result<_>>()?;
        Ok(Effects {
            target: moved.target - base.target,
            pre_acts,
        })
    }

    /// One pass with every leaf fixed at its clean value, plus `delta`.
    fn held(&mut self, delta: Option<Delta>) -> Result<Held> {
        let with = |hook: Hook, x: &Tensor, input: bool| -> Result<Tensor> {
            Ok(match &delta {
                Some(d) if d.hook == hook && d.input == input => {
                    (x + one_row(x.dims2()?, d.position, &d.v)?)?
                }
                _ => x.clone(),
            })
        };
        let at_hook =
            |hook: Hook, x: &Tensor| -> Result<Tensor> { Ok(with(hook, x, false)?.unsqueeze(0)?) };
        let mut leaves = BTreeMap::from([(EMBED, Leaf::Fixed(at_hook(EMBED, &self.x0)?))]);
        for (s, st) in self.saes.iter().zip(&self.states) {
            let out = s.output();
            leaves.insert(out, Leaf::Fixed(at_hook(out, &st.value)?));
            if out != s.hook {
                leaves.insert(s.hook, Leaf::Watch);
            }
        }
        let tokens = with(EMBED, &self.x0, true)?;
        let pass = run(self.model, &self.ids, &self.target, &mut self.lin, leaves)?;
        let pre_acts = (0..self.saes.len())
            .map(|i| {
                let x = match self.saes[i].hook == EMBED {
                    true => tokens.clone(),
                    false => pass.probe.incoming[&self.saes[i].hook].get(0)?,
                };
                self.frozen_pre_acts(i, &x)
            })
            .collect::<Result<_>>()?;
        Ok(Held {
            target: pass.m.to_scalar()?,
            pre_acts,
        })
    }
}

/// A value added at one (hook, position): to what continues from the hook, or to the input of the
/// SAE reading the token embeddings (`input`).
struct Delta {
    hook: Hook,
    position: usize,
    v: Tensor,
    input: bool,
}

/// [t, d] zeros with row `p` = v.
fn one_row((t, d): (usize, usize), p: usize, v: &Tensor) -> Result<Tensor> {
    let mut data = vec![0f32; t * d];
    data[p * d..(p + 1) * d].copy_from_slice(&v.to_vec1::<f32>()?);
    Ok(Tensor::from_vec(data, (t, d), &Device::Cpu)?)
}
