//! Where each SAE reads and writes, and which SAEs attribution runs through.
//!
//! An autoencoder reads and writes its own hook. A transcoder at `blocks.L.ln2.hook_normalized` (the
//! MLP's input) replaces the MLP: it writes `blocks.L.hook_mlp_out`, its latents' decoder rows are
//! vectors there and its error node is the MLP's output minus its reconstruction (with a skip
//! transcoder's x W_skip).

use std::collections::BTreeMap;

use sae_lm::{Hook, HookPoint, Model};
use sae_model::Reshape;

use super::HookedSae;
use crate::error::{CircuitError, Result};
use crate::probe::Leaf;

impl HookedSae {
    /// The hook its output continues from: its own, or for a transcoder the MLP's output.
    pub fn output(&self) -> Hook {
        match self.sae.cfg.is_transcoder() {
            true => Hook::new(self.hook.layer, HookPoint::MlpOut),
            false => self.hook,
        }
    }
}

/// Checks that attribution can run through these SAEs: shapes, supported kinds, no hook used twice.
pub(crate) fn check_saes(model: &Model, saes: &[HookedSae]) -> Result<()> {
    let mut used: BTreeMap<Hook, usize> = BTreeMap::new();
    for (i, s) in saes.iter().enumerate() {
        check_sae(model, s)?;
        for h in [s.hook, s.output()] {
            if let Some(&j) = used.get(&h) {
                if j != i {
                    return Err(CircuitError::Invalid(format!(
                        "two SAEs at {h} (SAE {} and {}, counting a transcoder's output hook)",
                        j + 1,
                        i + 1
                    )));
                }
            }
            used.insert(h, i);
        }
    }
    Ok(())
}

fn check_sae(model: &Model, s: &HookedSae) -> Result<()> {
    let unsupported = |reason: String| CircuitError::UnsupportedSae {
        hook: s.hook.name(),
        reason,
    };
    let cfg = &s.sae.cfg;
    if cfg.is_transcoder() && s.hook.point != HookPoint::MlpIn {
        return Err(unsupported(format!(
            "a transcoder is attributed as the MLP's replacement, from blocks.L.{} to blocks.L.{}",
            HookPoint::MlpIn.suffix(),
            HookPoint::MlpOut.suffix()
        )));
    }
    if cfg.reshape_activations != Reshape::None {
        return Err(unsupported(
            "hook_z reshaping (per-head attention rows) is not handled".into(),
        ));
    }
    for (what, hook, width) in [
        ("input", s.hook, cfg.d_in),
        ("output", s.output(), cfg.out_width()),
    ] {
        if width != model.width(hook) {
            return Err(unsupported(format!(
                "its {what} width {width} is not the width {} of {hook}",
                model.width(hook)
            )));
        }
    }
    Ok(())
}

/// `value` at every SAE's output hook, and a watch at each transcoder's input hook.
pub(crate) fn leaves(saes: &[HookedSae], value: Leaf) -> BTreeMap<Hook, Leaf> {
    let mut out = BTreeMap::new();
    for s in saes {
        out.insert(s.output(), value.clone());
        if s.output() != s.hook {
            out.insert(s.hook, Leaf::Watch);
        }
    }
    out
}
