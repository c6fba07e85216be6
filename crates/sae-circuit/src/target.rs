//! What is attributed: a scalar of the model's output (a next-token logit, a logit difference, the loss)
//! or of one hook's activation (for encoders).

use candle_core::{DType, Tensor, D};
use sae_lm::Hook;

use crate::error::{CircuitError, Result};

/// The scalar m whose relevance is distributed over tokens and features.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The logit of `token` at the last position.
    Logit {
        /// The token id.
        token: u32,
    },
    /// logit(a) - logit(b) at the last position.
    LogitDiff {
        /// The token whose logit counts positively.
        a: u32,
        /// The token whose logit counts negatively.
        b: u32,
    },
    /// The mean next-token cross-entropy over the prompt (positions 0..t-1 predicting 1..t).
    Loss,
    /// The projection of one hook's activation at `position` on `direction` (any model, encoders too).
    Direction {
        /// The hook read.
        hook: Hook,
        /// The position read.
        position: usize,
        /// The direction, of the hook's width.
        direction: Vec<f32>,
    },
}

impl Target {
    /// Whether the target is read from the logits (a causal model's head).
    pub fn needs_logits(&self) -> bool {
        !matches!(self, Target::Direction { .. })
    }

    /// Whether m is an affine function of the logits (so LRP conservation applies).
    pub fn is_affine(&self) -> bool {
        !matches!(self, Target::Loss)
    }

    /// m from the logits [1, t, vocab] of `ids`, differentiable.
    pub fn of_logits(&self, logits: &Tensor, ids: &[u32]) -> Result<Tensor> {
        let (_, t, vocab) = logits.dims3()?;
        let last = logits.get(0)?.get(t - 1)?;
        let check = |tok: u32| -> Result<()> {
            if tok as usize >= vocab {
                return Err(CircuitError::Invalid(format!(
                    "target token id {tok} is outside the vocabulary of {vocab}"
                )));
            }
            Ok(())
        };
        match self {
            Target::Logit { token } => {
                check(*token)?;
                Ok(last.get(*token as usize)?)
            }
            Target::LogitDiff { a, b } => {
                check(*a)?;
                check(*b)?;
                Ok((last.get(*a as usize)? - last.get(*b as usize)?)?)
            }
            Target::Loss => {
                if t < 2 {
                    return Err(CircuitError::Invalid(
                        "the loss needs a prompt of at least 2 tokens".into(),
                    ));
                }
                let l = logits.get(0)?.narrow(0, 0, t - 1)?;
                let max = l.max_keepdim(D::Minus1)?.detach();
                let shifted = l.broadcast_sub(&max)?;
                let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
                let logp = shifted.broadcast_sub(&lse)?;
                let next = Tensor::new(&ids[1..], logits.device())?
                    .to_dtype(DType::U32)?
                    .unsqueeze(1)?;
                let picked = logp.gather(&next, 1)?;
                Ok((picked.sum_all()? * (-1.0 / (t - 1) as f64))?)
            }
            Target::Direction { .. } => Err(CircuitError::Invalid(
                "a direction target is read from its hook, not from the logits".into(),
            )),
        }
    }

    /// m from the activation [1, t, width] at the target's hook, differentiable.
    pub(crate) fn of_hook(&self, x: &Tensor) -> Result<Tensor> {
        let Target::Direction {
            position,
            direction,
            hook,
        } = self
        else {
            return Err(CircuitError::Invalid("not a direction target".into()));
        };
        let (_, t, width) = x.dims3()?;
        if *position >= t || direction.len() != width {
            return Err(CircuitError::Invalid(format!(
                "the direction target at {hook} needs a position below {t} and {width} values"
            )));
        }
        let v = Tensor::new(direction.as_slice(), x.device())?;
        Ok((x.get(0)?.get(*position)? * v)?.sum_all()?)
    }
}
