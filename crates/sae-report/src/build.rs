//! Building a report: stream the store through the SAE (latents) and through plain columns
//! (basis directions, MLP neurons), then score, summarise, add logit effects and token texts.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use sae_model::Sae;
use sae_store::{Split, Store};

use crate::analyzer::{GroupAnalyzer, UnitStats};
use crate::checks::{check_inputs, store_hook};
use crate::histogram::density_histogram;
use crate::logits::logit_effects;
use crate::schema::*;
use crate::side::read_side_files;
use crate::summary::summarize;
use crate::window::UnitBatch;
use crate::ReportError;

/// Where a report build stands (for a progress bar).
#[derive(Clone, Copy, Debug)]
pub struct Progress<'a> {
    /// What is running now.
    pub phase: &'a str,
    /// Work units done over all phases (rows streamed, plus latents through the logit lens).
    pub done: u64,
    /// Total work units.
    pub total: u64,
}

/// A direction [d_model] through the final norm and unembedding -> logits [vocab].
pub type LensFn<'a> = &'a dyn Fn(&[f32]) -> Result<Vec<f32>, String>;

/// Everything a report is built from.
pub struct ReportInputs<'a> {
    /// The SAE.
    pub sae: &'a Sae,
    /// Its folder (recorded in the report).
    pub sae_dir: &'a Path,
    /// The store the SAE reads (with token ids).
    pub store: &'a Store,
    /// Optional store of the model's MLP neurons at the same layer.
    pub neurons: Option<&'a Store>,
    /// Settings.
    pub settings: ReportSettings,
    /// Text of a token id.
    pub text: &'a dyn Fn(u32) -> String,
    /// Logit lens of a causal LM, when available.
    pub lens: Option<LensFn<'a>>,
}

/// A batch of raw store rows: acts [n, d].
struct RawBatch<'a> {
    start_row: u64,
    d: usize,
    acts: &'a [f32],
    tokens: &'a [u32],
    docs: Option<&'a [u32]>,
    positions: Option<&'a [u32]>,
}

impl<'a> RawBatch<'a> {
    fn with_units(&self, acts: &'a [f32], units: usize) -> UnitBatch<'a> {
        UnitBatch {
            start_row: self.start_row,
            units,
            acts,
            token_ids: self.tokens,
            doc_ids: self.docs,
            positions: self.positions,
        }
    }
}

fn rows_used(store: &Store, max_rows: Option<u64>) -> u64 {
    let rows = store.split_rows(Split::All);
    max_rows.map_or(rows, |m| m.min(rows))
}

/// Streams the first `limit` rows of `store` in batches of `batch_rows`, one shard in memory at a time.
fn stream(
    store: &Store,
    limit: u64,
    batch_rows: usize,
    mut f: impl FnMut(&RawBatch) -> Result<(), ReportError>,
) -> Result<(), ReportError> {
    let d = store.d();
    let mut seen = 0u64;
    for chunk in store.chunks(Split::All) {
        if seen >= limit {
            break;
        }
        let chunk = chunk?;
        let rows = chunk.rows.min((limit - seen) as usize);
        let tokens = chunk
            .token_ids
            .as_deref()
            .ok_or_else(|| ReportError::NoTokenIds {
                store: store.dir().to_path_buf(),
            })?;
        let mut lo = 0;
        while lo < rows {
            let hi = (lo + batch_rows.max(1)).min(rows);
            f(&RawBatch {
                start_row: chunk.start_row + lo as u64,
                d,
                acts: &chunk.acts[lo * d..hi * d],
                tokens: &tokens[lo..hi],
                docs: chunk.doc_ids.as_deref().map(|v| &v[lo..hi]),
                positions: chunk.positions.as_deref().map(|v| &v[lo..hi]),
            })?;
            lo = hi;
        }
        seen += rows as u64;
    }
    Ok(())
}

/// Encodes rows with the SAE: x [n, d_in] -> f [n, d_sae] (dense, row-major).
pub fn encode_rows(sae: &Sae, acts: &[f32], n: usize) -> Result<Vec<f32>, ReportError> {
    let x = Tensor::from_slice(acts, (n, sae.cfg.d_in), &Device::Cpu)?;
    Ok(sae.encode(&x)?.flatten_all()?.to_vec1::<f32>()?)
}

struct Runner<'p, 'q> {
    progress: &'p mut dyn FnMut(Progress<'q>),
    done: u64,
    total: u64,
}

impl<'q> Runner<'_, 'q> {
    fn tick(&mut self, phase: &'q str, n: u64) {
        self.done += n;
        (self.progress)(Progress {
            phase,
            done: self.done,
            total: self.total,
        });
    }

    /// Two passes over a store's own columns: maxima, then the analysis with
    /// active = value > fraction x max (and > 0).
    fn columns(
        &mut self,
        store: &Store,
        limit: u64,
        s: &ReportSettings,
        phase: [&'q str; 2],
    ) -> Result<(Vec<UnitStats>, u64), ReportError> {
        let d = store.d();
        let mut max = vec![f32::NEG_INFINITY; d];
        stream(store, limit, s.batch_rows, |b| {
            for row in b.acts.chunks_exact(b.d) {
                for (m, &v) in max.iter_mut().zip(row) {
                    *m = m.max(v);
                }
            }
            self.tick(phase[0], b.tokens.len() as u64);
            Ok(())
        })?;
        let thresholds = max
            .iter()
            .map(|&m| (s.dense_active_fraction as f32 * m).max(0.0))
            .collect();
        let mut an = GroupAnalyzer::new(thresholds, s.analysis);
        stream(store, limit, s.batch_rows, |b| {
            an.push(&b.with_units(b.acts, d));
            self.tick(phase[1], b.tokens.len() as u64);
            Ok(())
        })?;
        let rows = an.rows();
        Ok((an.finish(), rows))
    }
}

fn group(
    kind: UnitKind,
    label: String,
    store: &Store,
    rows: u64,
    rule: ActiveRule,
    units: Vec<UnitStats>,
    s: &ReportSettings,
) -> GroupReport {
    let densities: Vec<f64> = units.iter().map(|u| u.density).collect();
    GroupReport {
        kind,
        label,
        store: store.dir().display().to_string(),
        hook: store_hook(store),
        rows,
        active_rule: rule,
        summary: summarize(&units, s.mono_threshold, s.min_active, s.analysis.seed),
        density_histogram: density_histogram(&densities),
        units,
        logits: None,
    }
}

/// Builds the full report (see the crate docs for every definition).
pub fn build_report(
    inp: &ReportInputs,
    progress: &mut dyn FnMut(Progress),
) -> Result<Report, ReportError> {
    check_inputs(inp.sae, inp.store, inp.neurons)?;
    let s = &inp.settings;
    let rows_s = rows_used(inp.store, s.max_rows);
    let rows_n = inp.neurons.map_or(0, |n| rows_used(n, s.max_rows));
    let d_sae = inp.sae.cfg.d_sae;
    let lens_work = if inp.lens.is_some() { d_sae as u64 } else { 0 };
    let mut run = Runner {
        progress,
        done: 0,
        total: 3 * rows_s + 2 * rows_n + lens_work,
    };
    // Latents: one pass, active = f > 0.
    let mut an = GroupAnalyzer::new(vec![0.0; d_sae], s.analysis);
    stream(inp.store, rows_s, s.batch_rows, |b| {
        let n = b.tokens.len();
        let f = encode_rows(inp.sae, b.acts, n)?;
        an.push(&b.with_units(&f, d_sae));
        run.tick("latents", n as u64);
        Ok(())
    })?;
    let rows = an.rows();
    let hook = store_hook(inp.store).unwrap_or_else(|| "input".into());
    let mut groups = vec![group(
        UnitKind::Latents,
        format!("SAE latents ({d_sae})"),
        inp.store,
        rows,
        ActiveRule::Positive,
        an.finish(),
        s,
    )];
    let rule = ActiveRule::FractionOfMax {
        fraction: s.dense_active_fraction,
    };
    let (units, rows) = run.columns(inp.store, rows_s, s, ["basis: maxima", "basis directions"])?;
    let label = format!("Basis directions of {hook} ({})", inp.store.d());
    groups.push(group(
        UnitKind::Basis,
        label,
        inp.store,
        rows,
        rule,
        units,
        s,
    ));
    if let Some(ns) = inp.neurons {
        let (units, rows) = run.columns(ns, rows_n, s, ["neurons: maxima", "neurons"])?;
        let hook = store_hook(ns).unwrap_or_else(|| "neurons".into());
        let label = format!("MLP neurons of {hook} ({})", ns.d());
        groups.push(group(UnitKind::Neurons, label, ns, rows, rule, units, s));
    }
    if let Some(lens) = inp.lens {
        let w_dec = inp.sae.w_dec.flatten_all()?.to_vec1::<f32>()?;
        let d_in = inp.sae.cfg.d_in;
        let mut effects = Vec::with_capacity(d_sae);
        for dir in w_dec.chunks_exact(d_in) {
            let logits = lens(dir).map_err(ReportError::LogitLens)?;
            effects.push(logit_effects(&logits, s.logit_tokens));
            run.tick("logit lens", 1);
        }
        groups[0].logits = Some(effects);
    }
    let vocab = attach_words(&mut groups, inp.text);
    let meta = &inp.sae.cfg.metadata;
    let side = read_side_files(inp.sae_dir, meta.hook_name.as_deref());
    Ok(Report {
        format: REPORT_FORMAT.into(),
        version: REPORT_VERSION,
        sae: SaeInfo {
            path: inp.sae_dir.display().to_string(),
            d_in: inp.sae.cfg.d_in,
            d_sae,
            architecture: inp.sae.cfg.activation.architecture().into(),
            model_name: meta.model_name.clone(),
            hook_name: meta.hook_name.clone(),
        },
        settings: s.clone(),
        groups,
        vocab,
        training: side.training,
        spliced_eval: side.spliced_eval,
        heldout_eval: side.heldout_eval,
        notes: side.notes,
    })
}

/// Writes explanations in words and collects the text of every token id the report mentions.
pub fn attach_words(
    groups: &mut [GroupReport],
    text: &dyn Fn(u32) -> String,
) -> BTreeMap<u32, String> {
    let mut ids = std::collections::BTreeSet::new();
    for g in groups.iter_mut() {
        for u in &mut g.units {
            if let Some(e) = &u.explanation {
                ids.extend(e.hypothesis.tokens());
                u.explanation_text = Some(e.hypothesis.describe(text));
            }
            let contexts = u
                .top
                .iter()
                .chain(u.quantiles.iter().flat_map(|q| &q.contexts));
            for c in contexts {
                ids.extend(c.tokens.iter().copied());
            }
        }
        for e in g.logits.iter().flatten() {
            ids.extend(e.promoted.iter().chain(&e.suppressed).map(|p| p.0));
        }
    }
    ids.into_iter().map(|id| (id, text(id))).collect()
}
