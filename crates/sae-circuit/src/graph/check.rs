//! Faithfulness measured in the real forward pass (the plain reference model, edited through its hook
//! sinks), not assumed: the top nodes zero- and mean-ablated one at a time against the change their
//! attribution predicts, and the circuit (the kept nodes) with everything else mean-ablated.
//!
//! Means are taken over the prompt's positions after the skipped prefix (the BOS position, whose residual
//! is far larger than the rest, is left out and never ablated). The nodes are the latents active in the clean
//! pass and the errors; a latent off in the clean pass is no node and keeps its live value.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use sae_lm::{Hook, HookSink};
use serde::Serialize;

use super::{Graph, NodeKind, NodeRef, Replacement};
use crate::error::{CircuitError, Result};

/// One node ablated on its own: the predicted (linearised) and measured change of the target.
#[derive(Debug, Clone, Serialize)]
pub struct NodeCheck {
    /// The node's id.
    pub id: String,
    /// Its attribution.
    pub attribution: f32,
    /// Zero ablation: predicted = -attribution.
    pub predicted_zero: f32,
    /// Zero ablation, measured.
    pub measured_zero: f32,
    /// Mean ablation: (mean - value) . grad.
    pub predicted_mean: f32,
    /// Mean ablation, measured.
    pub measured_mean: f32,
}

/// The faithfulness check of a graph.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The top nodes by |attribution|, each ablated alone.
    pub nodes: Vec<NodeCheck>,
    /// Pearson r of predicted vs measured zero-ablation effects.
    pub pearson_zero: f64,
    /// Pearson r of predicted vs measured mean-ablation effects.
    pub pearson_mean: f64,
    /// m(M): the target of the model (every node kept).
    pub m_full: f32,
    /// m(0): every latent and error node mean-ablated.
    pub m_empty: f32,
    /// m(C): only the graph's latent and error nodes kept, the rest mean-ablated.
    pub m_circuit: f32,
    /// (m(C) - m(0)) / (m(M) - m(0)).
    pub faithfulness: f64,
    /// Latent and error nodes in the circuit.
    pub circuit_nodes: usize,
}

/// Pearson correlation; NaN when either side is constant.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    sab / (saa * sbb).sqrt()
}

/// Per SAE: which latents (per position) and which errors are kept, and the means ablated ones take.
struct Keep {
    latents: Tensor,
    errors: Tensor,
    mean_acts: Tensor,
    mean_err: Tensor,
}

/// The real forward's sink: adds a delta at one (hook, position), or splices every SAE in with the nodes
/// outside the circuit mean-ablated (a transcoder's input recorded on the way, its output replaced).
enum Edit<'r, 'a> {
    Delta(Hook, Tensor),
    Circuit(&'r Replacement<'a>, Vec<Keep>, BTreeMap<Hook, Tensor>),
}

fn circuit<'r, 'a>(r: &'r Replacement<'a>, keep: Vec<Keep>) -> Edit<'r, 'a> {
    Edit::Circuit(r, keep, BTreeMap::new())
}

impl HookSink for Edit<'_, '_> {
    fn wants(&self, hook: Hook) -> bool {
        match self {
            Edit::Delta(h, _) => *h == hook,
            Edit::Circuit(r, ..) => r.saes.iter().any(|s| s.hook == hook || s.output() == hook),
        }
    }
    fn last_layer(&self) -> Option<usize> {
        None
    }
    fn put(&mut self, _: Hook, _: &Tensor) -> sae_lm::Result<()> {
        Ok(())
    }
    fn edit(&mut self, hook: Hook, x: &Tensor) -> sae_lm::Result<Option<Tensor>> {
        match self {
            Edit::Delta(_, d) => Ok(Some(x.broadcast_add(d)?)),
            Edit::Circuit(r, keep, inputs) => {
                let Some(i) = r.saes.iter().position(|s| s.output() == hook) else {
                    // A transcoder's input: kept for its output hook.
                    inputs.insert(hook, x.get(0)?);
                    return Ok(None);
                };
                let s = &r.saes[i];
                let y = x.get(0)?;
                let input = match inputs.get(&s.hook) {
                    Some(v) if s.hook != hook => v.clone(),
                    _ => y.clone(),
                };
                let spliced = splice(&s.sae, &keep[i], &input, &y)
                    .map_err(|e| sae_lm::LmError::Invalid(e.to_string()))?;
                Ok(Some(spliced.unsqueeze(0)?))
            }
        }
    }
}

/// x [t, d_in] (and y [t, d_out], what arrived at the output hook: x itself for an autoencoder) ->
/// decode(kept latents, the rest at their means), mapped back through x's own input normalization,
/// + (kept error (with the skip path), else its mean).
fn splice(sae: &sae_model::Sae, k: &Keep, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let acts = sae.encode(x)?;
    let err = (y - sae.decode_for_input(&acts, x)?)?;
    let mix = |v: &Tensor, keep: &Tensor, mean: &Tensor| -> Result<Tensor> {
        let off = keep.affine(-1.0, 1.0)?;
        Ok(((v.broadcast_mul(keep))? + off.broadcast_mul(mean)?)?)
    };
    let acts = mix(&acts, &k.latents, &k.mean_acts)?;
    Ok((sae.decode_for_input(&acts, x)? + mix(&err, &k.errors, &k.mean_err)?)?)
}

impl Replacement<'_> {
    /// The target of the real (plain reference) forward under `edit`.
    fn measure(&self, edit: &mut Edit) -> Result<f32> {
        let ids = Tensor::new(self.ids.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
        let logits = self.model.logits_reference(&ids, edit)?;
        Ok(self.target.of_logits(&logits, &self.ids)?.to_scalar()?)
    }

    /// Means over positions `skip..` of each SAE's latents [d_sae] and errors [d].
    fn means(&self, skip: usize) -> Result<Vec<(Tensor, Tensor)>> {
        let t = self.ids.len();
        if skip >= t {
            return Err(CircuitError::Invalid(format!(
                "the check needs a position after the {skip} skipped"
            )));
        }
        self.states
            .iter()
            .map(|s| {
                let a = s.acts.narrow(0, skip, t - skip)?.mean(0)?;
                let e = s.err.narrow(0, skip, t - skip)?.mean(0)?;
                Ok((a, e))
            })
            .collect()
    }

    /// Ablates the top `top_n` latent / error nodes of the graph one at a time (zero and mean), then
    /// measures the circuit's faithfulness; skipped positions ([`Replacement::skip_prefix`]) are never
    /// ablated.
    pub fn check(&self, graph: &Graph, top_n: usize) -> Result<Check> {
        let skip = self.skip;
        if !self.target.needs_logits() {
            return Err(CircuitError::Invalid(
                "the check measures a logit or loss target".into(),
            ));
        }
        let means = self.means(skip)?;
        let mut base = circuit(self, self.keep(&means, skip, |_| true)?);
        let m_full = self.measure(&mut base)?;
        let mut nodes = Vec::new();
        let mut top: Vec<_> = graph
            .nodes
            .iter()
            .filter(|n| matches!(n.kind, NodeKind::Latent | NodeKind::Error) && n.position >= skip)
            .collect();
        top.sort_by(|a, b| b.attribution.abs().total_cmp(&a.attribution.abs()));
        for n in top.into_iter().take(top_n) {
            let (hook, position, v) = self.node_vector(n.node)?;
            let (sae, mean) = match n.node {
                NodeRef::Latent { sae, latent, .. } => {
                    let mean = means[sae].0.get(latent)?;
                    (sae, self.decoder_row(sae, position, latent, &mean)?)
                }
                NodeRef::Error { sae, .. } => (sae, means[sae].1.clone()),
                _ => continue,
            };
            let g = self.grads[sae].get(position)?;
            let dot = |d: &Tensor| -> Result<f32> { Ok((d * &g)?.sum_all()?.to_scalar()?) };
            let zero = v.neg()?;
            let to_mean = (&mean - &v)?;
            let t = self.ids.len();
            let at = |d: &Tensor| -> Result<Tensor> { row_delta(t, position, d) };
            let measured_zero = self.measure(&mut Edit::Delta(hook, at(&zero)?))? - m_full;
            let measured_mean = self.measure(&mut Edit::Delta(hook, at(&to_mean)?))? - m_full;
            nodes.push(NodeCheck {
                id: n.id.clone(),
                attribution: n.attribution,
                predicted_zero: dot(&zero)?,
                measured_zero,
                predicted_mean: dot(&to_mean)?,
                measured_mean,
            });
        }
        let col = |f: fn(&NodeCheck) -> f32| nodes.iter().map(|c| f(c) as f64).collect::<Vec<_>>();
        let pearson_zero = pearson(&col(|c| c.predicted_zero), &col(|c| c.measured_zero));
        let pearson_mean = pearson(&col(|c| c.predicted_mean), &col(|c| c.measured_mean));
        let kept: std::collections::HashSet<NodeRef> = graph.nodes.iter().map(|n| n.node).collect();
        let m_empty = self.measure(&mut circuit(self, self.keep(&means, skip, |_| false)?))?;
        let mut only = circuit(self, self.keep(&means, skip, |r| kept.contains(&r))?);
        let m_circuit = self.measure(&mut only)?;
        Ok(Check {
            nodes,
            pearson_zero,
            pearson_mean,
            m_full,
            m_empty,
            m_circuit,
            faithfulness: (m_circuit - m_empty) as f64 / (m_full - m_empty) as f64,
            circuit_nodes: graph.nodes.iter().filter(|n| n.hook.is_some()).count(),
        })
    }

    /// Keep masks from a predicate on nodes: positions before `skip`, and latents that were off in the
    /// clean pass (not nodes of any graph), always keep their live values.
    fn keep(
        &self,
        means: &[(Tensor, Tensor)],
        skip: usize,
        keep: impl Fn(NodeRef) -> bool,
    ) -> Result<Vec<Keep>> {
        let t = self.ids.len();
        let mut out = Vec::with_capacity(self.saes.len());
        for (sae, (s, (ma, me))) in self.saes.iter().zip(means).enumerate() {
            let d_sae = s.sae.d_sae();
            let clean: Vec<Vec<f32>> = self.states[sae].acts.to_vec2()?;
            let mut lat = vec![1f32; t * d_sae];
            let mut err = vec![1f32; t];
            for position in skip..t {
                for latent in 0..d_sae {
                    let r = NodeRef::Latent {
                        sae,
                        position,
                        latent,
                    };
                    let on = clean[position][latent] != 0.0;
                    lat[position * d_sae + latent] = (!on || keep(r)) as u8 as f32;
                }
                err[position] = keep(NodeRef::Error { sae, position }) as u8 as f32;
            }
            out.push(Keep {
                latents: Tensor::from_vec(lat, (t, d_sae), &Device::Cpu)?,
                errors: Tensor::from_vec(err, (t, 1), &Device::Cpu)?,
                mean_acts: ma.clone(),
                mean_err: me.clone(),
            });
        }
        Ok(out)
    }
}

/// [1, t, d] zeros with row `p` = d.
fn row_delta(t: usize, p: usize, d: &Tensor) -> Result<Tensor> {
    let width = d.dim(0)?;
    let mut data = vec![0f32; t * width];
    data[p * width..(p + 1) * width].copy_from_slice(&d.to_vec1::<f32>()?);
    Ok(Tensor::from_vec(data, (1, t, width), &Device::Cpu)?)
}

#[cfg(test)]
mod tests {
    use super::pearson;

    #[test]
    fn pearson_matches_a_hand_computation() {
        // a = 1,2,3,4; b = 2,1,4,3: means 2.5; sab = 3; saa = sbb = 5 -> 0.6
        let r = pearson(&[1.0, 2.0, 3.0, 4.0], &[2.0, 1.0, 4.0, 3.0]);
        assert!((r - 0.6).abs() < 1e-12, "{r}");
        assert!((pearson(&[1.0, 2.0, 3.0], &[-2.0, -4.0, -6.0]) + 1.0).abs() < 1e-12);
        assert!(pearson(&[1.0, 1.0], &[1.0, 2.0]).is_nan());
    }
}
