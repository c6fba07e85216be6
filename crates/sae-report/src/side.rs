//! The files an SAE folder holds beside the SAE, which the report adds when present: the training
//! log (metrics.jsonl), the held-out reconstruction metrics (eval.json, from `sae run`) and the
//! spliced evaluation (eval_spliced.json, from `sae eval --model`). A damaged one becomes a note,
//! never an error: the report is about the SAE, these only add to it.

use std::path::Path;

use sae_model::EvalMetrics;

use crate::curves::{read_training_curves, TrainingCurves, MAX_CURVE_POINTS};
use crate::spliced::{read_spliced_eval, SplicedEval};
use crate::ReportError;

/// File name of the held-out reconstruction metrics inside an SAE folder (as `sae run` writes
/// them: `sae eval --json` of the SAE on its store's held-out rows).
pub const HELDOUT_EVAL_FILE: &str = "eval.json";

/// What the SAE folder holds beside the SAE.
#[derive(Clone, Debug, Default)]
pub struct SideFiles {
    /// From metrics.jsonl.
    pub training: Option<TrainingCurves>,
    /// From eval_spliced.json.
    pub spliced_eval: Option<SplicedEval>,
    /// From eval.json.
    pub heldout_eval: Option<EvalMetrics>,
    /// Files that could not be read or disagree with the SAE, in words.
    pub notes: Vec<String>,
}

/// Reads `sae_dir/eval.json`: `Ok(None)` when the folder has none.
pub fn read_heldout_eval(sae_dir: &Path) -> Result<Option<EvalMetrics>, ReportError> {
    let path = sae_dir.join(HELDOUT_EVAL_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ReportError::Io { path, source }),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ReportError::BadSideFile {
            path,
            msg: e.to_string(),
        })
}

/// Reads the side files of `sae_dir` (the SAE reads `sae_hook`, for the consistency checks).
pub fn read_side_files(sae_dir: &Path, sae_hook: Option<&str>) -> SideFiles {
    let mut notes = Vec::new();
    let training = read_training_curves(sae_dir, MAX_CURVE_POINTS).unwrap_or_else(|e| {
        notes.push(format!("training curves left out: {e}"));
        None
    });
    if let Some(t) = &training {
        if t.truncated_last_line {
            notes.push(format!(
                "{}: the last line is incomplete (a killed run?) and was left out",
                t.file
            ));
        }
        if t.skipped_lines > 0 {
            notes.push(format!(
                "{}: {} lines do not parse and were left out",
                t.file, t.skipped_lines
            ));
        }
    }
    let heldout_eval = read_heldout_eval(sae_dir).unwrap_or_else(|e| {
        notes.push(format!("held-out evaluation left out: {e}"));
        None
    });
    let spliced_eval = read_spliced_eval(sae_dir).unwrap_or_else(|e| {
        notes.push(format!("spliced evaluation left out: {e}"));
        None
    });
    if let Some(e) = &spliced_eval {
        notes.extend(e.inconsistencies(sae_hook));
    }
    SideFiles {
        training,
        spliced_eval,
        heldout_eval,
        notes,
    }
}
