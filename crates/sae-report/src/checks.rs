//! Input checks before a report: widths, token ids, and that the SAE and stores come from the
//! same model and layer (compared through the SAE's metadata and the stores' manifests).

use sae_model::Sae;
use sae_store::{Source, Store};

use crate::ReportError;

/// The layer index in a TransformerLens-style hook name (`blocks.{i}.…`).
pub fn hook_layer(hook: &str) -> Option<usize> {
    hook.strip_prefix("blocks.")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// The (model, hook) a store's rows came from, when its provenance names both.
pub(crate) fn harvest(store: &Store) -> Option<(&str, &str)> {
    match &store.manifest().source {
        Source::Harvest(h) => Some((h.model_id.as_str(), h.hook.as_str())),
        Source::Import(i) => i.model_id.as_deref().zip(i.hook.as_deref()),
        Source::Synthetic(_) => None,
    }
}

/// The store's hook point, when it was harvested.
pub fn store_hook(store: &Store) -> Option<String> {
    harvest(store).map(|(_, h)| h.to_string())
}

/// Checks that a report on `store` (and `neurons`) with `sae` makes sense.
pub fn check_inputs(sae: &Sae, store: &Store, neurons: Option<&Store>) -> Result<(), ReportError> {
    if sae.cfg.d_in != store.d() {
        return Err(ReportError::WidthMismatch {
            sae_d: sae.cfg.d_in,
            store_d: store.d(),
            store: store.dir().to_path_buf(),
        });
    }
    for s in std::iter::once(store).chain(neurons) {
        if !s.manifest().has_token_ids {
            return Err(ReportError::NoTokenIds {
                store: s.dir().to_path_buf(),
            });
        }
        if s.manifest().rows == 0 {
            return Err(ReportError::Empty {
                store: s.dir().to_path_buf(),
            });
        }
    }
    let meta = &sae.cfg.metadata;
    if let Some((model, hook)) = harvest(store) {
        if let Some(m) = meta
            .model_name
            .as_deref()
            .filter(|m| m.trim() != model.trim())
        {
            return Err(ReportError::SourceMismatch(format!(
                "different models: the SAE was trained on {m:?} but the store {} was harvested from {model:?}",
                store.dir().display()
            )));
        }
        if let Some(h) = meta
            .hook_name
            .as_deref()
            .filter(|h| h.trim() != hook.trim())
        {
            return Err(ReportError::SourceMismatch(format!(
                "different hook points: the SAE was trained at {h:?} but the store {} holds {hook:?}",
                store.dir().display()
            )));
        }
    }
    let Some(n) = neurons else { return Ok(()) };
    let sae_model = harvest(store)
        .map(|(m, _)| m.to_string())
        .or_else(|| meta.model_name.clone());
    let sae_hook = harvest(store)
        .map(|(_, h)| h.to_string())
        .or_else(|| meta.hook_name.clone());
    if let Some((model, hook)) = harvest(n) {
        if let Some(m) = sae_model.filter(|m| m.trim() != model.trim()) {
            return Err(ReportError::SourceMismatch(format!(
                "different models: the neurons store {} comes from {model:?} but the SAE's store from {m:?}",
                n.dir().display()
            )));
        }
        let (a, b) = (sae_hook.as_deref().and_then(hook_layer), hook_layer(hook));
        if let (Some(a), Some(b)) = (a, b) {
            if a != b {
                return Err(ReportError::SourceMismatch(format!(
                    "different layers: the neurons store {} is at layer {b} ({hook}) but the SAE is at layer {a}; compare units of the same layer",
                    n.dir().display()
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_from_hooks() {
        assert_eq!(hook_layer("blocks.3.mlp.hook_post"), Some(3));
        assert_eq!(hook_layer("blocks.12.hook_resid_post"), Some(12));
        assert_eq!(hook_layer("embed"), None);
    }
}
