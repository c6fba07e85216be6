//! Relevance at a hook: activation x gradient of the target, with LRP's rules (the linearised model) or
//! plain gradients (gradient x input), and the conservation check of LRP.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use sae_lm::{Hook, Linearize, Model, Rules};

use crate::error::{CircuitError, Result};
use crate::probe::{Leaf, Probe};
use crate::target::Target;

/// One forward pass through the reference model under `lin`: the target value and the probe.
pub(crate) struct Pass {
    /// The target m, differentiable with respect to the probe's leaves.
    pub m: Tensor,
    /// The sink, with what it recorded.
    pub probe: Probe,
}

/// Checks a prompt and a target against a model (one clear error each).
pub fn check_input(model: &Model, ids: &[u32], target: &Target) -> Result<()> {
    if ids.is_empty() {
        return Err(CircuitError::Invalid("the prompt has no tokens".into()));
    }
    if target.needs_logits() && !model.is_causal() {
        return Err(CircuitError::NotCausal { arch: model.arch() });
    }
    if let Some(max_ctx) = model.dims().max_ctx {
        if ids.len() > max_ctx {
            return Err(CircuitError::PromptTooLong {
                tokens: ids.len(),
                max_ctx,
            });
        }
    }
    Ok(())
}

/// Runs `ids` (one prompt) with these leaves; m is the target.
pub(crate) fn run(
    model: &Model,
    ids: &[u32],
    target: &Target,
    lin: &mut Linearize,
    leaves: BTreeMap<Hook, Leaf>,
) -> Result<Pass> {
    check_input(model, ids, target)?;
    let ids_t = Tensor::new(ids, &Device::Cpu)?.unsqueeze(0)?;
    let mut probe = Probe::new(leaves, target);
    let logits = model.forward_linear(&ids_t, &[ids.len()], &mut probe, lin)?;
    let m = match (target.needs_logits(), logits) {
        (true, Some(l)) => target.of_logits(&l, ids)?,
        (true, None) => return Err(CircuitError::NotCausal { arch: model.arch() }),
        (false, _) => {
            let x = probe.target_x.as_ref().ok_or_else(|| {
                CircuitError::Invalid("the target's hook was never reached".into())
            })?;
            target.of_hook(x)?
        }
    };
    Ok(Pass { m, probe })
}

/// Relevance at one hook.
#[derive(Debug, Clone)]
pub struct Relevance {
    /// The hook.
    pub hook: Hook,
    /// sum over the width of activation x gradient, per position.
    pub per_position: Vec<f32>,
    /// The activation [t, width].
    pub activation: Tensor,
    /// The gradient of the target [t, width].
    pub grad: Tensor,
    /// The target's value.
    pub target: f32,
}

/// Activation x gradient of `target` at `hook` (`blocks.0.hook_resid_pre`: the token embeddings) under
/// `rules` (all on: LRP; all off: gradient x input).
pub fn relevance(
    model: &Model,
    ids: &[u32],
    hook: Hook,
    target: &Target,
    rules: Rules,
) -> Result<Relevance> {
    let mut lin = Linearize::new(rules);
    cut_pass(model, ids, hook, target, &mut lin)
}

/// The forward with `hook` cut into a leaf, and the backward of the target to it, under `lin` (which
/// records the frozen values, so a caller can replay them).
fn cut_pass(
    model: &Model,
    ids: &[u32],
    hook: Hook,
    target: &Target,
    lin: &mut Linearize,
) -> Result<Relevance> {
    let pass = run(model, ids, target, lin, BTreeMap::from([(hook, Leaf::Cut)]))?;
    let grads = pass.m.backward()?;
    let var = &pass.probe.vars[&hook];
    let activation = var.as_tensor().get(0)?;
    let grad = match grads.get(var.as_tensor()) {
        Some(g) => g.get(0)?,
        None => activation.zeros_like()?,
    };
    let per_position = (&activation * &grad)?.sum(1)?.to_vec1()?;
    Ok(Relevance {
        hook,
        per_position,
        activation,
        grad,
        target: pass.m.to_scalar()?,
    })
}

/// LRP's conservation at a hook: the summed relevance against the target minus the bias contributions
/// (the target of the linearised model with the hook's activation zeroed everywhere).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conservation {
    /// sum over positions and width of activation x gradient.
    pub relevance: f64,
    /// The target m.
    pub target: f64,
    /// m of the linearised model with the hook's activation zero: what the biases contribute.
    pub bias: f64,
}

impl Conservation {
    /// |relevance - (target - bias)| / |target - bias|.
    pub fn relative_error(&self) -> f64 {
        let want = self.target - self.bias;
        (self.relevance - want).abs() / want.abs().max(f64::MIN_POSITIVE)
    }
}

/// The conservation check of LRP (every rule on) at `hook`.
pub fn conservation(
    model: &Model,
    ids: &[u32],
    hook: Hook,
    target: &Target,
) -> Result<Conservation> {
    if !target.is_affine() {
        return Err(CircuitError::Invalid(
            "conservation holds for a logit or logit-difference target, not the loss".into(),
        ));
    }
    let mut lin = Linearize::new(Rules::LRP);
    let lrp = cut_pass(model, ids, hook, target, &mut lin)?;
    let relevance = lrp.per_position.iter().map(|&r| r as f64).sum();
    lin.replay();
    let zero = lrp.activation.unsqueeze(0)?.zeros_like()?;
    let bias = run(
        model,
        ids,
        target,
        &mut lin,
        BTreeMap::from([(hook, Leaf::Fixed(zero))]),
    )?;
    Ok(Conservation {
        relevance,
        target: lrp.target as f64,
        bias: bias.m.to_scalar::<f32>()? as f64,
    })
}
