//! The table `sae run` ends with: per SAE, its reconstruction, sparsity, loss inside the model,
//! monosemanticity and where its dashboard is.

use std::path::{Path, PathBuf};

use sae_model::EvalMetrics;
use sae_report::{Report, UnitKind};
use sae_splice::SplicedMetrics;

/// One SAE's line.
pub struct SaeSummary {
    hook: String,
    eval: Option<EvalMetrics>,
    spliced: Option<SplicedMetrics>,
    median_f1: Option<f64>,
    dashboard: PathBuf,
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

impl SaeSummary {
    /// Reads what the stages wrote.
    pub fn read(hook: &str, sae: &Path, report: &Path) -> SaeSummary {
        let rep: Option<Report> = read(&report.join("report.json"));
        SaeSummary {
            hook: hook.to_string(),
            eval: read(&sae.join(super::run::EVAL_FILE)),
            spliced: read(&sae.join(super::eval_spliced::SPLICED_FILE)),
            median_f1: rep
                .as_ref()
                .and_then(|r| r.group(UnitKind::Latents))
                .and_then(|g| g.summary.median_f1),
            dashboard: report.join("index.html"),
        }
    }
}

fn cell(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

/// Prints the table to stdout.
pub fn print_summary(rows: &[SaeSummary]) {
    println!(
        "{:<28} {:>7} {:>7} {:>6} {:>8} {:>8} {:>7}  dashboard",
        "hook", "fvu", "L0", "dead", "ce_rec", "dLM", "medF1"
    );
    for r in rows {
        let e = r.eval.as_ref();
        let s = r.spliced.as_ref();
        println!(
            "{:<28} {:>7} {:>7} {:>6} {:>8} {:>8} {:>7}  {}",
            r.hook,
            cell(e.map(|e| e.fvu), 4),
            cell(e.map(|e| e.l0), 1),
            cell(e.map(|e| e.dead_frac), 3),
            cell(s.and_then(|s| s.ce_loss_recovered), 4),
            cell(s.map(|s| s.delta_lm_loss), 4),
            cell(r.median_f1, 3),
            r.dashboard.display()
        );
    }
}
