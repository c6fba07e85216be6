//! The read-write hook sink every attribution pass runs with: it records what arrives at chosen hooks and
//! continues with a gradient leaf or a fixed value there, and reads a direction target.

use std::collections::BTreeMap;

use candle_core::{Tensor, Var};
use sae_lm::{Hook, HookSink};

use crate::target::Target;

/// What the forward pass continues with at a hook.
#[derive(Debug, Clone)]
pub(crate) enum Leaf {
    /// x + 0 with the 0 a `Var`: its gradient is the total gradient at the hook, upstream stays connected.
    Through,
    /// A `Var` holding x's value: upstream is cut, the gradient is the direct effect of the hook's value.
    Cut,
    /// This fixed value (an intervention); nothing to differentiate.
    Fixed(Tensor),
    /// Recorded in `incoming`, continued unchanged (a transcoder's input).
    Watch,
}

/// The sink: leaves at some hooks, the values that arrived there, the target's activation.
pub(crate) struct Probe {
    leaves: BTreeMap<Hook, Leaf>,
    /// The `Var`s inserted, by hook.
    pub vars: BTreeMap<Hook, Var>,
    /// What arrived at each leaf hook (before it was replaced).
    pub incoming: BTreeMap<Hook, Tensor>,
    target_hook: Option<Hook>,
    /// The target hook's activation, when the target reads one.
    pub target_x: Option<Tensor>,
}

impl Probe {
    /// A probe with these leaves, reading `target` when it is a direction.
    pub fn new(leaves: BTreeMap<Hook, Leaf>, target: &Target) -> Probe {
        let target_hook = match target {
            Target::Direction { hook, .. } => Some(*hook),
            _ => None,
        };
        Probe {
            leaves,
            vars: BTreeMap::new(),
            incoming: BTreeMap::new(),
            target_hook,
            target_x: None,
        }
    }
}

impl HookSink for Probe {
    fn wants(&self, hook: Hook) -> bool {
        self.leaves.contains_key(&hook) || self.target_hook == Some(hook)
    }

    fn last_layer(&self) -> Option<usize> {
        self.target_hook.map(|h| h.layer)
    }

    fn put(&mut self, hook: Hook, x: &Tensor) -> sae_lm::Result<()> {
        self.edit(hook, x).map(|_| ())
    }

    fn edit(&mut self, hook: Hook, x: &Tensor) -> sae_lm::Result<Option<Tensor>> {
        let out = match self.leaves.get(&hook) {
            None => None,
            Some(leaf) => {
                self.incoming.insert(hook, x.clone());
                match leaf {
                    Leaf::Through => {
                        let zero = Var::zeros(x.dims(), x.dtype(), x.device())?;
                        let y = (x + zero.as_tensor())?;
                        self.vars.insert(hook, zero);
                        Some(y)
                    }
                    Leaf::Cut => {
                        let v = Var::from_tensor(&x.detach())?;
                        let y = v.as_tensor().clone();
                        self.vars.insert(hook, v);
                        Some(y)
                    }
                    Leaf::Fixed(value) => Some(value.clone()),
                    Leaf::Watch => None,
                }
            }
        };
        if self.target_hook == Some(hook) {
            self.target_x = Some(out.clone().unwrap_or_else(|| x.clone()));
        }
        Ok(out)
    }
}
