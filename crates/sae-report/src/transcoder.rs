//! Reports of transcoders (an SAE-like dictionary that reads one hook and writes another, e.g.
//! `blocks.3.ln2.hook_normalized -> blocks.3.hook_mlp_out`): the output hook, the checks of the
//! target store, and the reconstruction figures, which compare the output with the target hook's
//! rows (never with the input). Contexts and explanations read the input store as for an SAE; the
//! logit lens reads the decoder rows, which live in the output hook's space.

use sae_model::{EvalMetrics, Sae};
use sae_store::{Split, Store};

use crate::checks::{harvest, store_hook};
use crate::schema::TargetInfo;
use crate::ReportError;

/// Metadata key of a transcoder's output hook (SAELens 6: `cfg.metadata.hook_name_out`).
pub use sae_model::HOOK_NAME_OUT;

/// A transcoder's output hook: its metadata's `hook_name_out`, else the hook the target store was
/// harvested at; `None` for an autoencoder or when neither says.
pub fn output_hook(sae: &Sae, target: Option<&Store>) -> Option<String> {
    if !sae.cfg.is_transcoder() {
        return None;
    }
    let meta = sae.cfg.metadata.extra.get(HOOK_NAME_OUT);
    meta.and_then(|v| v.as_str().map(str::to_string))
        .or_else(|| target.and_then(store_hook))
}

/// The label of the latents group: "SAE latents (N)", or for a transcoder
/// "Transcoder latents (N), transcoder: IN -> OUT".
pub fn latents_label(sae: &Sae, target: Option<&Store>) -> String {
    let d_sae = sae.cfg.d_sae;
    if !sae.cfg.is_transcoder() {
        return format!("SAE latents ({d_sae})");
    }
    let hook = |h: Option<String>| h.unwrap_or_else(|| "?".into());
    format!(
        "Transcoder latents ({d_sae}), transcoder: {} -> {}",
        hook(sae.cfg.metadata.hook_name.clone()),
        hook(output_hook(sae, target))
    )
}

/// Checks a target store against the SAE and its input store: only a transcoder takes one; it
/// holds rows of the output's width, from the same model, at the transcoder's output hook.
/// (Row alignment with the input store is checked by the evaluation itself.)
pub fn check_target(sae: &Sae, store: &Store, target: Option<&Store>) -> Result<(), ReportError> {
    let Some(t) = target else { return Ok(()) };
    if !sae.cfg.is_transcoder() {
        return Err(ReportError::TargetForAutoencoder {
            kind: sae.kind(),
            store: t.dir().to_path_buf(),
        });
    }
    if t.d() != sae.d_out() {
        return Err(ReportError::TargetWidth {
            d_out: sae.d_out(),
            store_d: t.d(),
            store: t.dir().to_path_buf(),
        });
    }
    let Some((model, hook)) = harvest(t) else {
        return Ok(());
    };
    let sae_model = harvest(store)
        .map(|(m, _)| m.to_string())
        .or_else(|| sae.cfg.metadata.model_name.clone());
    if let Some(m) = sae_model.filter(|m| m.trim() != model.trim()) {
        return Err(ReportError::SourceMismatch(format!(
            "different models: the target store {} comes from {model:?} but the transcoder's input from {m:?}",
            t.dir().display()
        )));
    }
    let meta = sae.cfg.metadata.extra.get(HOOK_NAME_OUT);
    if let Some(h) = meta
        .and_then(|v| v.as_str())
        .filter(|h| h.trim() != hook.trim())
    {
        return Err(ReportError::SourceMismatch(format!(
            "different hook points: the transcoder writes {h:?} but the target store {} holds {hook:?}",
            t.dir().display()
        )));
    }
    Ok(())
}

/// The reconstruction figures of a transcoder against `target`, exactly as `sae eval --store
/// STORE --target-store TARGET` computes them: on the input store's held-out split, with the
/// target store's ground truth when it has one.
pub fn evaluate_against_target(
    sae: &Sae,
    store: &Store,
    target: &Store,
) -> Result<(EvalMetrics, TargetInfo), ReportError> {
    let truth = Some(target.ground_truth_path()).filter(|p| p.exists());
    let metrics = sae_model::evaluate_with_target(sae, store, Some(target), truth.as_deref())?;
    let info = TargetInfo {
        store: target.dir().display().to_string(),
        hook: store_hook(target),
        eval_rows: store.split_rows(Split::Eval),
    };
    Ok((metrics, info))
}

/// The note of a transcoder report built without a target store: what is missing and how to get it.
pub fn no_target_note(sae: &Sae, has_eval_file: bool) -> String {
    let out = output_hook(sae, None).unwrap_or_else(|| "its output hook".into());
    let shown = match has_eval_file {
        true => "the figures shown are the SAE folder's eval.json, not recomputed",
        false => "none are shown",
    };
    format!(
        "no reconstruction figures computed for this transcoder: its output is compared with the rows of {out}, not with its input; pass --target-store DIR (the store of {out}, row-aligned with --store, as `sae eval --target-store` takes it) to compute fvu, mse, l2_ratio here ({shown})"
    )
}
