//! Reports: per-latent statistics, top contexts, explanations, neuron comparison, HTML dashboard.
//!
//! Data flow: [`build_report`] streams an activation store batch by batch (never the whole store
//! in memory) through a [`GroupAnalyzer`] per group of units (SAE latents, the input's basis
//! directions, optionally the model's MLP neurons); each analyzer keeps bounded per-unit state
//! (moments, histogram, Misra–Gries token counters, top-N and reservoir contexts). The result is
//! a versioned [`Report`] (`report.json`), rendered by [`write_dashboard`] into `index.html` (a
//! compact index of the units inlined, their full data in chunk scripts loaded on demand) and by
//! [`card`] into a terminal card.
//!
//! Definitions: a latent is active where its activation is > 0; a dense unit (neuron or basis
//! direction) where its value is > `dense_active_fraction` x its maximum over the rows analysed
//! (and > 0). The score of a unit is the held-out F1 of its best token hypothesis (see
//! [`explain`]): the hypothesis is chosen on a fit half of the documents and scored on the other
//! half ([`explain_heldout`]; the in-sample F1 is kept beside it). Group summaries add bootstrap
//! intervals of the median ([`median_interval`]), the latents-minus-group differences
//! ([`comparisons`]) and the precision of each explanation by activation band ([`BandSample`]);
//! control groups ([`Control`]: an untrained SAE, random directions) run through the same code.

mod analyzer;
mod bands;
mod bootstrap;
mod build;
mod card;
mod checks;
mod chunks;
mod contexts;
mod controls;
mod cooccur;
mod curves;
mod error;
mod explain;
mod heavy;
mod heldout;
mod histogram;
mod html;
mod logits;
mod moments;
mod page;
mod schema;
mod sections;
mod side;
mod spliced;
mod stream;
mod summary;
mod svg;
mod transcoder;
mod window;

#[cfg(test)]
mod curves_tests;
#[cfg(test)]
mod dashboard_tests;
#[cfg(test)]
mod sections_tests;
#[cfg(test)]
mod tests_heldout;
#[cfg(test)]
mod tests_synthetic;

pub use analyzer::{round_sig, AnalysisSettings, GroupAnalyzer, UnitStats};
pub use bands::{BandPrecision, BandSample, BANDS};
pub use bootstrap::{difference_interval, median_in_place, median_interval, Interval, RESAMPLES};
pub use build::{attach_words, build_report, LensFn, Progress, ReportInputs};
pub use card::card;
pub use checks::{check_inputs, hook_layer};
pub use chunks::{
    chunk_file, remove_stale_chunks, write_chunks, CHUNK_CALLBACK, CHUNK_DIR_PREFIX, CHUNK_UNITS,
};
pub use contexts::{Context, QuantileBand};
pub use controls::{comparisons, random_directions, Control};
pub use cooccur::{GlobalCounts, UnitCooccur};
pub use curves::{
    config_batch, curves_from_log, downsample_min_max, parse_metrics, read_training_curves,
    CurveSeries, MetricLine, MetricsLog, TrainingCurves, CURVE_METRICS, MAX_CURVE_POINTS,
    METRICS_FILE, TRAIN_CONFIG_FILE,
};
pub use error::ReportError;
pub use explain::{explain, Explanation, Hypothesis};
pub use heavy::MisraGries;
pub use heldout::{counts, explain_heldout, is_heldout, Half, HalfScores, SplitKeys, BLOCK_ROWS};
pub use histogram::{density_histogram, Bin, DensityHistogram, LogHistogram};
pub use html::{dashboard_html, write_dashboard, write_report, DASHBOARD_FILE};
pub use logits::logit_effects;
pub use moments::{accumulate_block, Moments};
pub use schema::*;
pub use sections::{curve_svgs, wants_log};
pub use side::{read_heldout_eval, read_side_files, SideFiles, HELDOUT_EVAL_FILE};
pub use spliced::{read_spliced_eval, Figure, SplicedEval, SPLICED_EVAL_FILE};
pub use stream::encode_rows;
pub use summary::{is_scored, quantile, scored_f1, spearman, summarize, GroupSummary};
pub use svg::esc as escape_html;
pub use svg::{esc, Axis, Line, LinePlot, YScale};
pub use transcoder::{
    check_target, evaluate_against_target, latents_label, no_target_note, output_hook,
    HOOK_NAME_OUT,
};
pub use window::UnitBatch;
