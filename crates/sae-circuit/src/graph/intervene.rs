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
            } => {
                let a = self.states[sae].acts.get(position)?.get(latent)?;
                let d = self.saes[sae].sae.w_dec.get(latent)?;
                (self.saes[sae].hook, position, d.broadcast_mul(&a)?)
            }
            NodeRef::Error { sae, position } => (
                self.saes[sae].hook,
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
        let moved = self.held(Some((hook, position, (v * scale)?)))?;
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

    /// One pass with every leaf fixed at its clean value, plus `delta` (hook, position, vector).
    fn held(&mut self, delta: Option<(Hook, usize, Tensor)>) -> Result<Held> {
        let with = |hook: Hook, x: &Tensor| -> Result<Tensor> {
            let x = match &delta {
                Some((h, p, v)) if *h == hook => (x + one_row(x.dims2()?, *p, v)?)?,
                _ => x.clone(),
            };
            Ok(x.unsqueeze(0)?)
        };
        let mut leaves = BTreeMap::from([(EMBED, Leaf::Fixed(with(EMBED, &self.x0)?))]);
        for (s, st) in self.saes.iter().zip(&self.states) {
            leaves.insert(s.hook, Leaf::Fixed(with(s.hook, &st.x)?));
        }
        let pass = run(self.model, &self.ids, &self.target, &mut self.lin, leaves)?;
        let pre_acts = self
            .saes
            .iter()
            .map(|s| Ok(s.sae.pre_acts(&pass.probe.incoming[&s.hook].get(0)?)?))
            .collect::<Result<_>>()?;
        Ok(Held {
            target: pass.m.to_scalar()?,
            pre_acts,
        })
    }
}

/// [t, d] zeros with row `p` = v.
fn one_row((t, d): (usize, usize), p: usize, v: &Tensor) -> Result<Tensor> {
    let mut data = vec![0f32; t * d];
    data[p * d..(p + 1) * d].copy_from_slice(&v.to_vec1::<f32>()?);
    Ok(Tensor::from_vec(data, (t, d), &Device::Cpu)?)
}
