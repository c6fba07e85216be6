//! Hook points (TransformerLens names), parsed and printed from one table, and the sink models offer them to.

use std::fmt;

use candle_core::Tensor;

use crate::error::{LmError, Result};

/// Where in a block an activation is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookPoint {
    /// The residual stream entering the block: [batch, seq, d_model].
    ResidPre,
    /// The attention sublayer's output (after its output projection): [batch, seq, d_model].
    AttnOut,
    /// The MLP's input, the normalized residual stream it reads (GPT-2: `ln_2`'s output; Llama:
    /// `post_attention_layernorm`'s; BERT: the attention sublayer's LayerNorm output, which in this
    /// post-norm model is also the residual the MLP output is added to): [batch, seq, d_model]. With
    /// `hook_mlp_out` it is the (input, target) pair of a transcoder.
    MlpIn,
    /// The MLP's hidden activations after the nonlinearity (gated: act(gate) * up): [batch, seq, d_mlp].
    MlpPost,
    /// The MLP sublayer's output: [batch, seq, d_model].
    MlpOut,
    /// The residual stream leaving the block: [batch, seq, d_model].
    ResidPost,
}

impl HookPoint {
    /// Every point, in the order a block computes them.
    pub const ALL: [HookPoint; 6] = [
        HookPoint::ResidPre,
        HookPoint::AttnOut,
        HookPoint::MlpIn,
        HookPoint::MlpPost,
        HookPoint::MlpOut,
        HookPoint::ResidPost,
    ];

    /// The name after `blocks.{i}.`: the one place these strings are defined.
    pub fn suffix(self) -> &'static str {
        match self {
            HookPoint::ResidPre => "hook_resid_pre",
            HookPoint::AttnOut => "hook_attn_out",
            HookPoint::MlpIn => "ln2.hook_normalized",
            HookPoint::MlpPost => "mlp.hook_post",
            HookPoint::MlpOut => "hook_mlp_out",
            HookPoint::ResidPost => "hook_resid_post",
        }
    }
}

/// A hook point in one block, written `blocks.{layer}.{point suffix}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hook {
    /// Block index, from 0.
    pub layer: usize,
    /// Which activation in the block.
    pub point: HookPoint,
}

impl Hook {
    /// A hook at `point` of block `layer`.
    pub fn new(layer: usize, point: HookPoint) -> Hook {
        Hook { layer, point }
    }

    /// Parses `blocks.{i}.{suffix}`; `None` if the string is not of that form.
    pub fn parse(name: &str) -> Option<Hook> {
        let rest = name.strip_prefix("blocks.")?;
        let (layer, suffix) = rest.split_once('.')?;
        if layer.is_empty() || !layer.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let layer = layer.parse().ok()?;
        let point = HookPoint::ALL.into_iter().find(|p| p.suffix() == suffix)?;
        Some(Hook { layer, point })
    }

    /// Parses a hook name and checks it against a model with `n_layers` blocks.
    pub fn parse_for(name: &str, n_layers: usize) -> Result<Hook> {
        let hook = Hook::parse(name).ok_or_else(|| LmError::UnknownHook {
            hook: name.to_string(),
            valid: valid_hooks_summary(n_layers),
        })?;
        if hook.layer >= n_layers {
            return Err(LmError::LayerOutOfRange {
                hook: name.to_string(),
                layer: hook.layer,
                n_layers,
                last: n_layers.saturating_sub(1),
            });
        }
        Ok(hook)
    }

    /// The TransformerLens-style name.
    pub fn name(&self) -> String {
        format!("blocks.{}.{}", self.layer, self.point.suffix())
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "blocks.{}.{}", self.layer, self.point.suffix())
    }
}

/// Every hook of a model with `n_layers` blocks, block by block.
pub fn all_hooks(n_layers: usize) -> Vec<Hook> {
    (0..n_layers)
        .flat_map(|layer| {
            HookPoint::ALL
                .into_iter()
                .map(move |point| Hook { layer, point })
        })
        .collect()
}

/// The valid hook names written compactly, e.g. `blocks.{0..5}.hook_resid_pre, ...`.
pub fn valid_hooks_summary(n_layers: usize) -> String {
    let last = n_layers.saturating_sub(1);
    HookPoint::ALL
        .iter()
        .map(|p| format!("blocks.{{0..{last}}}.{}", p.suffix()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Receives the activations a forward pass offers at its hook points, and may replace them (a splice).
pub trait HookSink {
    /// Whether the sink wants this hook (the model skips the copy otherwise).
    fn wants(&self, hook: Hook) -> bool;
    /// The last block any wanted hook needs; `None` runs the whole model (and the head, for logits).
    fn last_layer(&self) -> Option<usize>;
    /// Takes one activation. x: [batch, seq, width].
    fn put(&mut self, hook: Hook, x: &Tensor) -> Result<()>;
    /// Takes one activation and may return a replacement of the same shape, which the forward pass then
    /// continues with (the splice that spliced evaluation and interventions use). The default only reads.
    fn edit(&mut self, hook: Hook, x: &Tensor) -> Result<Option<Tensor>> {
        self.put(hook, x)?;
        Ok(None)
    }
    /// What a forward pass calls at each hook point: `edit` when the sink wants the hook; returns the
    /// activation the pass continues with.
    fn offer(&mut self, hook: Hook, x: Tensor) -> Result<Tensor> {
        if !self.wants(hook) {
            return Ok(x);
        }
        match self.edit(hook, &x)? {
            None => Ok(x),
            Some(y) if y.dims() == x.dims() => Ok(y),
            Some(y) => Err(LmError::Sink {
                hook: hook.name(),
                message: format!(
                    "the replacement has shape {:?}, the activation {:?}",
                    y.dims(),
                    x.dims()
                ),
            }),
        }
    }
}

/// A sink that keeps the tensors of a fixed set of hooks, in the order they were asked for.
#[derive(Debug, Default)]
pub struct Capture {
    wanted: Vec<Hook>,
    got: Vec<Option<Tensor>>,
}

impl Capture {
    /// A capture of these hooks.
    pub fn new(hooks: &[Hook]) -> Capture {
        Capture {
            wanted: hooks.to_vec(),
            got: vec![None; hooks.len()],
        }
    }

    /// The tensor captured for `hook`, if it was wanted and offered.
    pub fn get(&self, hook: Hook) -> Option<&Tensor> {
        let i = self.wanted.iter().position(|h| *h == hook)?;
        self.got[i].as_ref()
    }

    /// Takes the captured tensors out, in the order the hooks were given (None where not offered).
    pub fn take(&mut self) -> Vec<Option<Tensor>> {
        std::mem::replace(&mut self.got, vec![None; self.wanted.len()])
    }
}

impl HookSink for Capture {
    fn wants(&self, hook: Hook) -> bool {
        self.wanted.contains(&hook)
    }

    fn last_layer(&self) -> Option<usize> {
        self.wanted.iter().map(|h| h.layer).max()
    }

    fn put(&mut self, hook: Hook, x: &Tensor) -> Result<()> {
        if let Some(i) = self.wanted.iter().position(|h| *h == hook) {
            self.got[i] = Some(x.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_parse() {
        for hook in all_hooks(3) {
            assert_eq!(Hook::parse(&hook.name()), Some(hook));
        }
        assert_eq!(
            Hook::parse("blocks.11.mlp.hook_post"),
            Some(Hook::new(11, HookPoint::MlpPost))
        );
        // TransformerLens' name of the MLP input (a transcoder's input hook).
        assert_eq!(
            Hook::parse("blocks.2.ln2.hook_normalized"),
            Some(Hook::new(2, HookPoint::MlpIn))
        );
    }

    #[test]
    fn malformed_names_do_not_parse() {
        for bad in [
            "blocks.x.hook_resid_pre",
            "blocks..hook_resid_pre",
            "blocks.1.hook_nope",
            "hook_resid_pre",
            "blocks.-1.hook_resid_pre",
        ] {
            assert_eq!(Hook::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn out_of_range_and_unknown_hooks_are_named() {
        let err = Hook::parse_for("blocks.6.hook_resid_post", 6)
            .unwrap_err()
            .to_string();
        assert!(err.contains("layer 6") && err.contains("0..=5"), "{err}");
        let err = Hook::parse_for("blocks.0.resid", 6)
            .unwrap_err()
            .to_string();
        assert!(err.contains("blocks.{0..5}.hook_resid_post"), "{err}");
    }
}
