//! `report.json`: the versioned report format (what `sae report` writes and `sae inspect` reads).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::analyzer::{AnalysisSettings, UnitStats};
use crate::bootstrap::Interval;
use crate::controls::Control;
use crate::curves::TrainingCurves;
use crate::histogram::DensityHistogram;
use crate::spliced::SplicedEval;
use crate::summary::GroupSummary;
use crate::ReportError;

/// Value of the `format` field.
pub const REPORT_FORMAT: &str = "sae-report";
/// Layout version this build writes and reads.
/// Version 2: scores are held out (chosen on a fit half of the documents, scored on the other).
pub const REPORT_VERSION: u32 = 2;
/// File name of the report inside the output folder.
pub const REPORT_FILE: &str = "report.json";

/// Which kind of units a group holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    /// The SAE's latents.
    Latents,
    /// The model's MLP neurons (`blocks.{i}.mlp.hook_post`).
    Neurons,
    /// The standard basis directions of the SAE's input space (the store's columns).
    Basis,
    /// Control: an SAE of the same architecture and width, initialised as training initialises
    /// it, never trained.
    Untrained,
    /// Control: random unit directions in the SAE's input space, thresholded as basis directions.
    Random,
}

/// When a unit counts as active.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum ActiveRule {
    /// Activation > 0 (SAE latents: their zero is the encoder's decision).
    Positive,
    /// Activation > `fraction` x the unit's maximum over the rows analysed (and > 0): for dense
    /// units (GELU neurons, residual coordinates) that are rarely exactly zero.
    FractionOfMax {
        /// The fraction of the maximum.
        fraction: f64,
    },
}

/// Top promoted and suppressed tokens of a decoder direction (logit lens).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogitEffects {
    /// Largest logits, largest first: (token id, logit).
    pub promoted: Vec<(u32, f32)>,
    /// Smallest logits, smallest first: (token id, logit).
    pub suppressed: Vec<(u32, f32)>,
}

/// Statistics of one group of units.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupReport {
    /// Kind of unit.
    pub kind: UnitKind,
    /// Human-readable label, e.g. "SAE latents" or "MLP neurons (blocks.3.mlp.hook_post)".
    pub label: String,
    /// Store folder the group was measured on.
    pub store: String,
    /// Hook point of that store, when harvested.
    pub hook: Option<String>,
    /// Rows analysed.
    pub rows: u64,
    /// When a unit counts as active.
    pub active_rule: ActiveRule,
    /// Score distribution and counts.
    pub summary: GroupSummary,
    /// Histogram of log10 firing density.
    pub density_histogram: DensityHistogram,
    /// Every unit, by id.
    pub units: Vec<UnitStats>,
    /// Logit-lens effects per unit (latents of a causal LM only), by id.
    pub logits: Option<Vec<LogitEffects>>,
}

/// The latents' median held-out F1 against another group's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The other group.
    pub kind: UnitKind,
    /// Its label.
    pub label: String,
    /// median F1 (latents) - median F1 (the group), over scored units.
    pub difference: Option<f64>,
    /// 95% bootstrap interval of the difference (each group's units resampled independently).
    pub interval: Option<Interval>,
}

/// About the SAE the report is for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SaeInfo {
    /// SAE folder.
    pub path: String,
    /// Input width.
    pub d_in: usize,
    /// Number of latents.
    pub d_sae: usize,
    /// SAELens architecture name.
    pub architecture: String,
    /// Model the SAE was trained on, per its metadata.
    pub model_name: Option<String>,
    /// Hook point, per its metadata (a transcoder's input hook).
    pub hook_name: Option<String>,
    /// A transcoder's output width (`None` for an autoencoder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d_out: Option<usize>,
    /// A transcoder's output hook, whose space its decoder rows live in: its metadata's
    /// `hook_name_out`, else the target store's hook (`None` for an autoencoder, or unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_name_out: Option<String>,
}

impl SaeInfo {
    /// Whether the report is of a transcoder.
    pub fn is_transcoder(&self) -> bool {
        self.d_out.is_some()
    }

    /// "transcoder: IN -> OUT" for a transcoder ("?" for a hook not known), `None` otherwise.
    pub fn transcoder_line(&self) -> Option<String> {
        let hook = |h: &Option<String>| h.clone().unwrap_or_else(|| "?".into());
        self.is_transcoder().then(|| {
            format!(
                "transcoder: {} -> {}",
                hook(&self.hook_name),
                hook(&self.hook_name_out)
            )
        })
    }
}

/// The store a transcoder's output was compared with for the report's reconstruction figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// Target store folder (the output hook's rows, row-aligned with the input store).
    pub store: String,
    /// Its hook point, when harvested.
    pub hook: Option<String>,
    /// Held-out rows the figures are over (the input store's eval split, as `sae eval` reads it).
    pub eval_rows: u64,
}

/// Settings the report was built with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSettings {
    /// Per-unit analysis settings.
    pub analysis: AnalysisSettings,
    /// F1 at or above which a unit counts as monosemantic.
    pub mono_threshold: f64,
    /// Units active on fewer rows in either half (fit, held-out) are not scored in the summaries.
    pub min_active: u64,
    /// Fraction of the maximum above which a dense unit (neuron, basis direction) is active.
    pub dense_active_fraction: f64,
    /// Rows analysed at most per store (from the start).
    pub max_rows: Option<u64>,
    /// Rows encoded per batch.
    pub batch_rows: usize,
    /// Promoted / suppressed tokens kept per latent by the logit lens.
    pub logit_tokens: usize,
    /// Control groups added to the report.
    #[serde(default)]
    pub controls: Vec<Control>,
    /// Worker threads analysing groups in parallel (the result does not depend on it).
    #[serde(default = "two")]
    pub threads: usize,
}

fn two() -> usize {
    2
}

impl Default for ReportSettings {
    fn default() -> Self {
        ReportSettings {
            analysis: AnalysisSettings::default(),
            mono_threshold: 0.5,
            min_active: 10,
            dense_active_fraction: 0.5,
            max_rows: None,
            batch_rows: 1024,
            logit_tokens: 10,
            controls: vec![],
            threads: 2,
        }
    }
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`REPORT_FORMAT`].
    pub format: String,
    /// [`REPORT_VERSION`].
    pub version: u32,
    /// The SAE.
    pub sae: SaeInfo,
    /// Settings used.
    pub settings: ReportSettings,
    /// Groups: latents first, then basis directions, then neurons when given.
    pub groups: Vec<GroupReport>,
    /// The latents' median held-out F1 minus each other group's, with bootstrap intervals.
    #[serde(default)]
    pub comparisons: Vec<Comparison>,
    /// Text of every token id the report mentions.
    pub vocab: BTreeMap<u32, String>,
    /// Loss, FVU, L0 and dead fraction over training, from the SAE folder's metrics.jsonl
    /// (`None` when it has none, e.g. an SAE downloaded from SAELens).
    #[serde(default)]
    pub training: Option<TrainingCurves>,
    /// The SAE spliced into the model, from the SAE folder's eval_spliced.json (`None` when absent).
    #[serde(default)]
    pub spliced_eval: Option<SplicedEval>,
    /// Reconstruction on the store's held-out rows: for a transcoder given a target store,
    /// computed here against it ([`Report::target`]); otherwise from the SAE folder's eval.json
    /// (`None` when absent).
    #[serde(default)]
    pub heldout_eval: Option<sae_model::EvalMetrics>,
    /// The target store a transcoder's `heldout_eval` was computed against (`None`: not computed
    /// here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetInfo>,
    /// What the report left out or found inconsistent in the SAE folder's side files, in words.
    #[serde(default)]
    pub notes: Vec<String>,
}

impl Report {
    /// The group of a kind, if present.
    pub fn group(&self, kind: UnitKind) -> Option<&GroupReport> {
        self.groups.iter().find(|g| g.kind == kind)
    }

    /// Text of a token id ("<id N>" when unknown).
    pub fn token(&self, id: u32) -> String {
        self.vocab
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("<id {id}>"))
    }

    /// Reads and checks `dir/report.json`.
    pub fn read(dir: &Path) -> Result<Report, ReportError> {
        let path = dir.join(REPORT_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| ReportError::Io {
            path: path.clone(),
            source,
        })?;
        let bad = |msg: String| ReportError::BadReport {
            path: path.clone(),
            msg,
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(REPORT_FORMAT) {
            return Err(bad(format!("not an {REPORT_FORMAT} file")));
        }
        let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
        if version != REPORT_VERSION as u64 {
            return Err(bad(format!(
                "version {version}; this build reads version {REPORT_VERSION}"
            )));
        }
        serde_json::from_value(value).map_err(|e| bad(e.to_string()))
    }
}
