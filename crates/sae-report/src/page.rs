//! The data `index.html` inlines: the report without its heavy per-unit parts. Each group keeps its
//! summary, its density histogram and a compact index of its units (one array per field, by unit
//! id: what the units table, the search, the sorting and the overview plots read); a unit's full
//! statistics, contexts and logit-lens tokens are in the chunk files ([`crate::chunks`]) the page
//! loads when it shows the unit's card. Densities are not repeated: the page computes
//! `active / rows`, exactly as the analyzer does.

use serde::Serialize;

use crate::chunks::{CHUNK_CALLBACK, CHUNK_UNITS};
use crate::histogram::DensityHistogram;
use crate::schema::{
    ActiveRule, Comparison, GroupReport, Report, ReportSettings, SaeInfo, UnitKind,
};
use crate::spliced::SplicedEval;
use crate::summary::GroupSummary;

/// Everything the page script needs before any chunk is loaded.
#[derive(Serialize)]
pub(crate) struct PageData<'a> {
    format: &'a str,
    version: u32,
    sae: &'a SaeInfo,
    settings: &'a ReportSettings,
    comparisons: &'a [Comparison],
    spliced_eval: Option<&'a SplicedEval>,
    chunks: ChunkLayout<'a>,
    groups: Vec<PageGroup<'a>>,
}

/// Where the chunk files are and how units are split among them.
#[derive(Serialize)]
struct ChunkLayout<'a> {
    /// Folder (next to index.html) holding `<kind>-<n>.js`.
    dir: &'a str,
    /// Units per chunk: unit `id` is in chunk `id / units`.
    units: usize,
    /// Global function each chunk file calls with its data.
    callback: &'static str,
}

/// A group as the page first needs it.
#[derive(Serialize)]
struct PageGroup<'a> {
    kind: UnitKind,
    label: &'a str,
    rows: u64,
    active_rule: &'a ActiveRule,
    summary: &'a GroupSummary,
    density_histogram: &'a DensityHistogram,
    index: UnitIndex<'a>,
}

/// The summary fields of every unit of a group, one array per field, indexed by unit id.
#[derive(Serialize)]
struct UnitIndex<'a> {
    active: Vec<u64>,
    max: Vec<f32>,
    kurtosis: Vec<Option<f64>>,
    active_fit: Vec<u64>,
    active_heldout: Vec<u64>,
    /// Held-out F1 of the explanation (`None`: never active on the fit half).
    f1: Vec<Option<f64>>,
    explanation_text: Vec<Option<&'a str>>,
}

impl<'a> UnitIndex<'a> {
    fn of(g: &'a GroupReport) -> UnitIndex<'a> {
        let u = &g.units;
        UnitIndex {
            active: u.iter().map(|u| u.active).collect(),
            max: u.iter().map(|u| u.max).collect(),
            kurtosis: u.iter().map(|u| u.kurtosis).collect(),
            active_fit: u.iter().map(|u| u.active_fit).collect(),
            active_heldout: u.iter().map(|u| u.active_heldout).collect(),
            f1: u
                .iter()
                .map(|u| u.explanation.as_ref().map(|e| e.f1))
                .collect(),
            explanation_text: u.iter().map(|u| u.explanation_text.as_deref()).collect(),
        }
    }
}

impl<'a> PageData<'a> {
    /// The page data of `report`, its chunks in the folder `chunk_dir`.
    pub(crate) fn new(report: &'a Report, chunk_dir: &'a str) -> PageData<'a> {
        PageData {
            format: &report.format,
            version: report.version,
            sae: &report.sae,
            settings: &report.settings,
            comparisons: &report.comparisons,
            spliced_eval: report.spliced_eval.as_ref(),
            chunks: ChunkLayout {
                dir: chunk_dir,
                units: CHUNK_UNITS,
                callback: CHUNK_CALLBACK,
            },
            groups: report
                .groups
                .iter()
                .map(|g| PageGroup {
                    kind: g.kind,
                    label: &g.label,
                    rows: g.rows,
                    active_rule: &g.active_rule,
                    summary: &g.summary,
                    density_histogram: &g.density_histogram,
                    index: UnitIndex::of(g),
                })
                .collect(),
        }
    }
}
