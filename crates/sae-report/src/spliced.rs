//! The SAE judged inside the model: `eval_spliced.json`, which `sae eval --model M --sae DIR
//! --corpus FILE` writes into the SAE folder, read when present (every figure optional, other
//! fields kept as they are) and checked for consistency with the SAE the report is for.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ReportError;

/// File name of the spliced evaluation inside an SAE folder.
pub const SPLICED_EVAL_FILE: &str = "eval_spliced.json";

/// Next-token loss and KL with the SAE spliced into the model (means over the evaluated tokens;
/// special-token positions keep their activation and are left out).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SplicedEval {
    /// Model evaluated.
    #[serde(default)]
    pub model: Option<String>,
    /// Hook point whose activation the SAE's reconstruction replaced.
    #[serde(default)]
    pub hook: Option<String>,
    /// Tokens averaged over.
    #[serde(default)]
    pub tokens: Option<u64>,
    /// Cross-entropy of the clean model.
    #[serde(default)]
    pub ce_clean: Option<f64>,
    /// Cross-entropy with the SAE's reconstruction in place of the activation.
    #[serde(default)]
    pub ce_sae: Option<f64>,
    /// Cross-entropy with the activation zero-ablated.
    #[serde(default)]
    pub ce_zero: Option<f64>,
    /// (CE_zero - CE_sae) / (CE_zero - CE_clean).
    #[serde(default)]
    pub ce_loss_recovered: Option<f64>,
    /// CE_sae - CE_clean.
    #[serde(default)]
    pub delta_lm_loss: Option<f64>,
    /// KL(clean || sae) of the next-token distributions.
    #[serde(default)]
    pub kl_sae: Option<f64>,
    /// KL(clean || zero-ablated).
    #[serde(default)]
    pub kl_zero: Option<f64>,
    /// (KL_zero - KL_sae) / KL_zero.
    #[serde(default)]
    pub kl_div_score: Option<f64>,
    /// Any other fields of the file, kept as they are.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// A figure of [`SplicedEval`] as the dashboard lists it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figure {
    /// Field name.
    pub name: &'static str,
    /// The value, when present.
    pub value: Option<f64>,
    /// One line on what it means.
    pub meaning: &'static str,
}

impl SplicedEval {
    /// The figures in display order, each with its one-line explanation.
    pub fn figures(&self) -> [Figure; 8] {
        let f = |name, value, meaning| Figure {
            name,
            value,
            meaning,
        };
        [
            f("ce_loss_recovered", self.ce_loss_recovered,
              "(CE_zero - CE_sae) / (CE_zero - CE_clean): share of the loss that zero-ablating the hook costs which the SAE gives back (1 = perfect, 0 = no better than ablation)"),
            f("delta_lm_loss", self.delta_lm_loss,
              "CE_sae - CE_clean: next-token loss (nats per token) added by splicing the SAE in (0 = none)"),
            f("kl_div_score", self.kl_div_score,
              "(KL_zero - KL_sae) / KL_zero: the same as CE loss recovered, on the next-token distributions"),
            f("ce_clean", self.ce_clean, "CE_clean: next-token cross-entropy of the model as it is"),
            f("ce_sae", self.ce_sae, "CE_sae: cross-entropy with the SAE's reconstruction in place of the hooked activation"),
            f("ce_zero", self.ce_zero, "CE_zero: cross-entropy with the hooked activation set to zero"),
            f("kl_sae", self.kl_sae, "KL(clean || SAE spliced in), nats per token"),
            f("kl_zero", self.kl_zero, "KL(clean || zero-ablated), nats per token"),
        ]
    }

    /// Disagreements between the file's figures and the ratios they are defined by, and between
    /// its hook and the SAE's (`sae_hook`), in words; empty when everything agrees.
    pub fn inconsistencies(&self, sae_hook: Option<&str>) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |name: &str, stated: Option<f64>, computed: Option<f64>| {
            if let (Some(s), Some(c)) = (stated, computed) {
                if c.is_finite() && (s - c).abs() > 1e-4 * c.abs().max(1.0) {
                    out.push(format!(
                        "{SPLICED_EVAL_FILE}: {name} is {s} but its inputs give {c}"
                    ));
                }
            }
        };
        let (clean, sae, zero) = (self.ce_clean, self.ce_sae, self.ce_zero);
        let recovered = zip3(zero, sae, clean).map(|(z, s, c)| (z - s) / (z - c));
        check("ce_loss_recovered", self.ce_loss_recovered, recovered);
        check(
            "delta_lm_loss",
            self.delta_lm_loss,
            sae.zip(clean).map(|(s, c)| s - c),
        );
        let kl = self.kl_zero.zip(self.kl_sae).map(|(z, s)| (z - s) / z);
        check("kl_div_score", self.kl_div_score, kl);
        if let (Some(h), Some(s)) = (&self.hook, sae_hook) {
            if h != s {
                out.push(format!(
                    "{SPLICED_EVAL_FILE} spliced the SAE at {h} but the SAE reads {s}"
                ));
            }
        }
        out
    }
}

fn zip3(a: Option<f64>, b: Option<f64>, c: Option<f64>) -> Option<(f64, f64, f64)> {
    Some((a?, b?, c?))
}

/// Reads `sae_dir/eval_spliced.json`: `Ok(None)` when the folder has none.
pub fn read_spliced_eval(sae_dir: &Path) -> Result<Option<SplicedEval>, ReportError> {
    let path = sae_dir.join(SPLICED_EVAL_FILE);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// As `sae eval --model` writes it, with a field this build does not know and a null.
    const EVAL: &str = r#"{"model": "HuggingFaceTB/SmolLM2-135M", "hook": "blocks.3.hook_resid_post",
        "tokens": 12345, "ce_clean": 3.0, "ce_sae": 3.5, "ce_zero": 8.0, "ce_loss_recovered": 0.9,
        "delta_lm_loss": 0.5, "kl_sae": 0.4, "kl_zero": 5.0, "kl_div_score": 0.92,
        "batches": 7, "ce_extra": null}"#;

    #[test]
    fn reads_the_file_and_keeps_unknown_fields() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_spliced_eval(dir.path()).unwrap(), None);
        std::fs::write(dir.path().join(SPLICED_EVAL_FILE), EVAL).unwrap();
        let e = read_spliced_eval(dir.path()).unwrap().unwrap();
        assert_eq!(e.tokens, Some(12345));
        assert_eq!(
            (e.ce_clean, e.ce_sae, e.ce_zero),
            (Some(3.0), Some(3.5), Some(8.0))
        );
        assert_eq!(e.kl_div_score, Some(0.92));
        assert_eq!(e.extra["batches"], 7);
        let figures = e.figures();
        assert_eq!(figures[0].name, "ce_loss_recovered");
        assert_eq!(figures[0].value, Some(0.9));
        // Round trip through report.json keeps every field.
        let back: SplicedEval = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        std::fs::write(dir.path().join(SPLICED_EVAL_FILE), "{\"ce_clean\": ").unwrap();
        let err = read_spliced_eval(dir.path()).unwrap_err().to_string();
        assert!(err.contains(SPLICED_EVAL_FILE), "{err}");
    }

    #[test]
    fn inconsistent_figures_are_named() {
        let e: SplicedEval = serde_json::from_str(EVAL).unwrap();
        // (8 - 3.5) / (8 - 3) = 0.9; 3.5 - 3 = 0.5; (5 - 0.4) / 5 = 0.92: all agree.
        assert!(e
            .inconsistencies(Some("blocks.3.hook_resid_post"))
            .is_empty());
        let bad = SplicedEval {
            ce_loss_recovered: Some(0.8),
            ..e.clone()
        };
        let notes = bad.inconsistencies(Some("blocks.5.hook_resid_post"));
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("ce_loss_recovered is 0.8 but its inputs give 0.9"));
        assert!(notes[1].contains("blocks.5.hook_resid_post"));
    }
}
