//! Building a report: stream the store through the SAE (latents) and through plain columns
//! (basis directions, MLP neurons), then score, summarise, add logit effects and token texts.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Tensor;
use sae_model::{EvalMetrics, Sae};
use sae_store::Store;

use crate::analyzer::UnitStats;
use crate::checks::{check_inputs, store_hook};
use crate::controls::{comparisons, directions_tensor, Control};
use crate::histogram::density_histogram;
use crate::logits::logit_effects;
use crate::schema::*;
use crate::side::{read_side_files, SideFiles, HELDOUT_EVAL_FILE};
use crate::stream::{analyze, rows_used, run_tasks, Task, Ticker, Units};
use crate::summary::summarize;
use crate::transcoder::{
    check_target, evaluate_against_target, latents_label, no_target_note, output_hook,
};
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
    /// A transcoder's target store (its output hook's rows, row-aligned with `store`): the
    /// reconstruction figures are computed against it (see [`crate::evaluate_against_target`]).
    pub target: Option<&'a Store>,
    /// Optional store of the model's MLP neurons at the same layer.
    pub neurons: Option<&'a Store>,
    /// The untrained control SAE (same architecture and width, at its initialisation), required
    /// when the settings ask for [`Control::Untrained`].
    pub untrained: Option<&'a Sae>,
    /// Settings.
    pub settings: ReportSettings,
    /// Text of a token id.
    pub text: &'a dyn Fn(u32) -> String,
    /// Logit lens of a causal LM, when available: it reads the decoder rows (`d_out` wide, in the
    /// output hook's space for a transcoder), so the caller gives one only where that space is
    /// the residual stream's.
    pub lens: Option<LensFn<'a>>,
    /// The caller's notes for the report (e.g. why there is no logit lens), in words.
    pub notes: Vec<String>,
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

/// A group to analyse: what it is and how its units are read.
struct Job<'a> {
    kind: UnitKind,
    label: String,
    store: &'a Store,
    limit: u64,
    units: Units<'a>,
    rule: ActiveRule,
}

/// The groups of a report, in report order: latents, basis directions, neurons, then controls.
fn jobs<'a>(
    inp: &ReportInputs<'a>,
    random: Option<&'a Tensor>,
) -> Result<Vec<Job<'a>>, ReportError> {
    let s = &inp.settings;
    let hook = store_hook(inp.store).unwrap_or_else(|| "input".into());
    let dense = ActiveRule::FractionOfMax {
        fraction: s.dense_active_fraction,
    };
    let job = |kind, label, store, units, rule| Job {
        kind,
        label,
        store,
        limit: rows_used(store, s.max_rows),
        units,
        rule,
    };
    let mut v = vec![job(
        UnitKind::Latents,
        latents_label(inp.sae, inp.target),
        inp.store,
        Units::Sae(inp.sae),
        ActiveRule::Positive,
    )];
    let label = format!("Basis directions of {hook} ({})", inp.store.d());
    v.push(job(
        UnitKind::Basis,
        label,
        inp.store,
        Units::Columns,
        dense,
    ));
    if let Some(ns) = inp.neurons {
        let nhook = store_hook(ns).unwrap_or_else(|| "neurons".into());
        let label = format!("MLP neurons of {nhook} ({})", ns.d());
        v.push(job(UnitKind::Neurons, label, ns, Units::Columns, dense));
    }
    if s.controls.contains(&Control::Untrained) {
        if inp.sae.cfg.is_transcoder() {
            return Err(ReportError::UntrainedTranscoder);
        }
        let u = inp.untrained.ok_or(ReportError::NoUntrainedSae)?;
        check_inputs(u, inp.store, None)?;
        let label = format!("Untrained SAE ({}, never trained)", u.cfg.d_sae);
        v.push(job(
            UnitKind::Untrained,
            label,
            inp.store,
            Units::Sae(u),
            ActiveRule::Positive,
        ));
    }
    if let Some(dirs) = random {
        let label = format!("Random directions in {hook} ({})", inp.store.d());
        v.push(job(
            UnitKind::Random,
            label,
            inp.store,
            Units::Directions(dirs),
            dense,
        ));
    }
    Ok(v)
}

/// Work units of a job for the progress bar (rows streamed, per pass).
fn work(j: &Job) -> u64 {
    match j.units {
        Units::Sae(_) => j.limit,
        _ => 2 * j.limit,
    }
}

/// A job's expected cost, for scheduling the largest first: rows x units x passes (an SAE's
/// encode counts as a pass).
fn cost(j: &Job) -> u64 {
    let (units, passes) = match j.units {
        Units::Sae(sae) => (sae.cfg.d_sae, 2),
        Units::Columns => (j.store.d(), 2),
        Units::Directions(dirs) => (dirs.dims2().map_or(0, |d| d.0), 3),
    };
    j.limit * units as u64 * passes
}

/// Builds the full report (see the crate docs for every definition).
pub fn build_report(
    inp: &ReportInputs,
    progress: &mut dyn FnMut(Progress),
) -> Result<Report, ReportError> {
    check_inputs(inp.sae, inp.store, inp.neurons)?;
    check_target(inp.sae, inp.store, inp.target)?;
    let s = &inp.settings;
    let d_sae = inp.sae.cfg.d_sae;
    let random = match s.controls.contains(&Control::Random) {
        true => Some(directions_tensor(
            inp.store.d(),
            inp.store.d(),
            s.analysis.seed,
        )?),
        false => None,
    };
    let jobs = jobs(inp, random.as_ref())?;
    let lens_work = if inp.lens.is_some() { d_sae as u64 } else { 0 };
    let total = jobs.iter().map(work).sum::<u64>() + lens_work;
    let ticker = Ticker::default();
    let tasks: Vec<(u64, Task<GroupReport>)> = jobs
        .into_iter()
        .map(|j| {
            let t = &ticker;
            let c = cost(&j);
            let task = Box::new(move || {
                let (units, rows) = analyze(
                    j.store,
                    j.limit,
                    &j.units,
                    s.batch_rows,
                    s.dense_active_fraction,
                    s.analysis,
                    t,
                )?;
                Ok(group(j.kind, j.label, j.store, rows, j.rule, units, s))
            }) as Task<GroupReport>;
            (c, task)
        })
        .collect();
    let mut poll = || {
        progress(Progress {
            phase: "units",
            done: ticker.done(),
            total,
        })
    };
    let mut groups = run_tasks(tasks, s.threads, &mut poll)?;
    let mut done = ticker.done();
    if let Some(lens) = inp.lens {
        // W_dec: [d_sae, d_out], one row per latent in the output's space.
        let w_dec = inp.sae.w_dec.flatten_all()?.to_vec1::<f32>()?;
        let mut effects = Vec::with_capacity(d_sae);
        for dir in w_dec.chunks_exact(inp.sae.d_out()) {
            let logits = lens(dir).map_err(ReportError::LogitLens)?;
            effects.push(logit_effects(&logits, s.logit_tokens));
            done += 1;
            progress(Progress {
                phase: "logit lens",
                done,
                total,
            });
        }
        groups[0].logits = Some(effects);
    }
    let vocab = attach_words(&mut groups, inp.text);
    let meta = &inp.sae.cfg.metadata;
    let mut side = read_side_files(inp.sae_dir, meta.hook_name.as_deref());
    let at = Progress {
        phase: "reconstruction",
        done,
        total,
    };
    let (heldout_eval, target) = reconstruction(inp, &mut side, || progress(at))?;
    let mut notes = inp.notes.clone();
    notes.append(&mut side.notes);
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
            d_out: inp.sae.cfg.d_out,
            hook_name_out: output_hook(inp.sae, inp.target),
        },
        settings: s.clone(),
        comparisons: comparisons(&groups, s.min_active, s.analysis.seed),
        groups,
        vocab,
        training: side.training,
        spliced_eval: side.spliced_eval,
        heldout_eval,
        target,
        notes,
    })
}

/// The reconstruction figures: a transcoder's computed against its target store when given
/// (the folder's eval.json then left aside), else the folder's eval.json (with a note for a
/// transcoder saying how to compute them here).
fn reconstruction(
    inp: &ReportInputs,
    side: &mut SideFiles,
    mut progress: impl FnMut(),
) -> Result<(Option<EvalMetrics>, Option<TargetInfo>), ReportError> {
    if !inp.sae.cfg.is_transcoder() {
        return Ok((side.heldout_eval.take(), None));
    }
    let Some(t) = inp.target else {
        let has_file = side.heldout_eval.is_some();
        side.notes.push(no_target_note(inp.sae, has_file));
        return Ok((side.heldout_eval.take(), None));
    };
    progress();
    let (metrics, info) = evaluate_against_target(inp.sae, inp.store, t)?;
    if side.heldout_eval.is_some() {
        side.notes.push(format!(
            "the SAE folder's {HELDOUT_EVAL_FILE} was left aside: the reconstruction figures are computed against the target store {}",
            info.store
        ));
    }
    Ok((Some(metrics), Some(info)))
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
