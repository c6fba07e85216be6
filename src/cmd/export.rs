//! `sae export --neuronpedia`: a report's latents as the feature batches Neuronpedia's importer
//! and SAEDashboard-style viewers read (`batch-N.json`: `{model_id, layer, sae_set, features}`,
//! each feature with its top and quantile-band activations as token strings and values, its
//! activation histogram, its logit-lens tokens and its firing fraction).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sae_report::{hook_layer, Context, GroupReport, Report, UnitKind, UnitStats};
use serde::Serialize;

/// Export a report's latents for other viewers.
#[derive(clap::Args)]
pub struct Args {
    /// Report folder (from `sae report`: report.json).
    #[arg(long)]
    report: PathBuf,
    /// Output folder for the batch files.
    #[arg(long)]
    out: PathBuf,
    /// Write Neuronpedia / SAEDashboard feature batches (the only format so far).
    #[arg(long, required = true)]
    neuronpedia: bool,
    /// Features per batch file.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Neuronpedia model id [default: the SAE's model name].
    #[arg(long)]
    model_id: Option<String>,
    /// Neuronpedia SAE set name [default: "sae-rs"].
    #[arg(long, default_value = "sae-rs")]
    sae_set: String,
    /// The dataset the activations came from, recorded in every feature.
    #[arg(long, default_value = "")]
    dataset: String,
}

/// One activation window (Neuronpedia `activations[i]`). Top activations have bin_min -1,
/// bin_max the unit's maximum and bin_contains -1; a quantile band's windows its activation
/// range and the share of active rows it covers.
#[derive(Serialize)]
struct Activation {
    bin_min: f64,
    bin_max: f64,
    bin_contains: f64,
    tokens: Vec<String>,
    values: Vec<f64>,
}

/// One feature (Neuronpedia's dashboard feature; the neuron-alignment, correlation and
/// logit-histogram fields we do not compute are written empty).
#[derive(Serialize)]
struct Feature {
    feature_index: usize,
    neuron_alignment_indices: Vec<usize>,
    neuron_alignment_values: Vec<f64>,
    neuron_alignment_l1: Vec<f64>,
    correlated_neurons_indices: Vec<usize>,
    correlated_neurons_l1: Vec<f64>,
    correlated_neurons_pearson: Vec<f64>,
    correlated_features_indices: Vec<usize>,
    correlated_features_l1: Vec<f64>,
    correlated_features_pearson: Vec<f64>,
    neg_str: Vec<String>,
    neg_values: Vec<f64>,
    pos_str: Vec<String>,
    pos_values: Vec<f64>,
    frac_nonzero: f64,
    freq_hist_data_bar_values: Vec<f64>,
    freq_hist_data_bar_heights: Vec<f64>,
    logits_hist_data_bar_heights: Vec<f64>,
    logits_hist_data_bar_values: Vec<f64>,
    n_prompts_total: u64,
    n_tokens_in_prompt: usize,
    dataset: String,
    decoder_weights_dist: Vec<f64>,
    activations: Vec<Activation>,
}

/// One batch file.
#[derive(Serialize)]
struct Batch<'a> {
    model_id: &'a str,
    layer: usize,
    sae_set: &'a str,
    features: Vec<Feature>,
}

/// Rounded to 3 decimals, as SAEDashboard writes its values.
fn r3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn window(report: &Report, c: &Context, bin: (f64, f64, f64)) -> Activation {
    Activation {
        bin_min: r3(bin.0),
        bin_max: r3(bin.1),
        bin_contains: r3(bin.2),
        tokens: c.tokens.iter().map(|&t| report.token(t)).collect(),
        values: c.acts.iter().map(|&v| r3(v as f64)).collect(),
    }
}

fn feature(report: &Report, group: &GroupReport, u: &UnitStats, dataset: &str) -> Feature {
    let mut activations: Vec<Activation> = u
        .top
        .iter()
        .map(|c| window(report, c, (-1.0, u.max as f64, -1.0)))
        .collect();
    for band in &u.quantiles {
        let bin = (
            band.act_lo as f64,
            band.act_hi as f64,
            band.q_hi - band.q_lo,
        );
        activations.extend(band.contexts.iter().map(|c| window(report, c, bin)));
    }
    let logits = group.logits.as_ref().and_then(|l| l.get(u.id));
    let strs = |v: &[(u32, f32)]| v.iter().map(|(t, _)| report.token(*t)).collect();
    let vals = |v: &[(u32, f32)]| v.iter().map(|(_, x)| r3(*x as f64)).collect();
    Feature {
        feature_index: u.id,
        neuron_alignment_indices: vec![],
        neuron_alignment_values: vec![],
        neuron_alignment_l1: vec![],
        correlated_neurons_indices: vec![],
        correlated_neurons_l1: vec![],
        correlated_neurons_pearson: vec![],
        correlated_features_indices: vec![],
        correlated_features_l1: vec![],
        correlated_features_pearson: vec![],
        neg_str: logits.map_or(vec![], |l| strs(&l.suppressed)),
        neg_values: logits.map_or(vec![], |l| vals(&l.suppressed)),
        pos_str: logits.map_or(vec![], |l| strs(&l.promoted)),
        pos_values: logits.map_or(vec![], |l| vals(&l.promoted)),
        frac_nonzero: u.density,
        freq_hist_data_bar_values: u
            .histogram
            .iter()
            .map(|b| r3((b.lo + b.hi) / 2.0))
            .collect(),
        freq_hist_data_bar_heights: u.histogram.iter().map(|b| b.count as f64).collect(),
        logits_hist_data_bar_heights: vec![],
        logits_hist_data_bar_values: vec![],
        n_prompts_total: group.rows,
        n_tokens_in_prompt: 0,
        dataset: dataset.to_string(),
        decoder_weights_dist: vec![],
        activations,
    }
}

fn write(path: &Path, batch: &Batch) -> anyhow::Result<()> {
    let text = serde_json::to_vec(batch)?;
    sae_store::atomic_write(path, &text).with_context(|| format!("writing {}", path.display()))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.batch_size > 0, "--batch-size must be at least 1");
    let report = Report::read(&args.report)
        .with_context(|| format!("reading the report in {}", args.report.display()))?;
    let group = report
        .groups
        .iter()
        .find(|g| g.kind == UnitKind::Latents)
        .with_context(|| format!("the report in {} has no SAE latents", args.report.display()))?;
    let model_id = args
        .model_id
        .clone()
        .or_else(|| report.sae.model_name.clone())
        .unwrap_or_default();
    let layer = report
        .sae
        .hook_name
        .as_deref()
        .and_then(hook_layer)
        .unwrap_or(0);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut files = 0;
    for (i, units) in group.units.chunks(args.batch_size).enumerate() {
        let batch = Batch {
            model_id: &model_id,
            layer,
            sae_set: &args.sae_set,
            features: units
                .iter()
                .map(|u| feature(&report, group, u, &args.dataset))
                .collect(),
        };
        write(&args.out.join(format!("batch-{i}.json")), &batch)?;
        files += 1;
    }
    println!(
        "wrote {} features in {files} batch files to {}",
        group.units.len(),
        args.out.display()
    );
    Ok(())
}
