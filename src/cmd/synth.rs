//! `sae synth`: write an activation store of synthetic superposition data with known ground truth.

use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use sae_store::DType;
use sae_synth::{HierarchySpec, SynthConfig};

/// Generate N unit-norm true features in D dimensions and samples that are sparse sums of them.
#[derive(clap::Args)]
pub struct Args {
    /// Number of true features.
    #[arg(long)]
    features: usize,
    /// Activation dimension.
    #[arg(long)]
    dim: usize,
    /// Mean probability that a feature fires in a sample.
    #[arg(long)]
    firing_prob: f64,
    /// Make firing probabilities Zipfian across features: p_i proportional to (i+1)^-A, mean kept.
    #[arg(long)]
    zipf_exponent: Option<f64>,
    /// Partition the features into G groups that tend to fire together (marginals unchanged).
    #[arg(long)]
    correlated_groups: Option<usize>,
    /// Hierarchical features: the first P features are parents, each with --children C children
    /// (the next P * C features); a parent also fires whenever one of its children fires. The
    /// hierarchy and the held-out rows' firing features go to the store's hierarchy.json (the
    /// absorption benchmark of `sae eval`).
    #[arg(long, requires = "children")]
    parents: Option<usize>,
    /// Children per parent (with --parents).
    #[arg(long, requires = "parents")]
    children: Option<usize>,
    /// Number of samples (rows).
    #[arg(long)]
    samples: u64,
    /// Random seed: the same seed and settings give the same store.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output store folder (must not already hold a store, unless --resume).
    #[arg(long)]
    out: PathBuf,
    /// Fraction of the samples held out as the eval split (the last rows).
    #[arg(long, default_value_t = 0.05)]
    eval_frac: f64,
    /// On-disk dtype of the activations: f32, f16 or bf16.
    #[arg(long, default_value = "f32", value_parser = super::parse_dtype)]
    dtype: DType,
    /// Rows per shard file.
    #[arg(long, default_value_t = 65_536)]
    shard_rows: usize,
    /// Continue an interrupted run with the same settings in --out.
    #[arg(long)]
    resume: bool,
    /// Print the manifest as JSON when done.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = SynthConfig {
        features: args.features,
        dim: args.dim,
        firing_prob: args.firing_prob,
        zipf_exponent: args.zipf_exponent,
        correlated_groups: args.correlated_groups,
        hierarchy: args
            .parents
            .zip(args.children)
            .map(|(parents, children)| HierarchySpec { parents, children }),
        samples: args.samples,
        seed: args.seed,
        eval_frac: args.eval_frac,
        dtype: args.dtype,
        shard_rows: args.shard_rows,
    };
    cfg.validate()?;
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(cfg.samples)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} rows  {per_sec}  eta {eta}")
            .expect("static progress template"),
    );
    let start = std::time::Instant::now();
    let manifest = sae_synth::generate(&cfg, &args.out, args.resume, |rows| bar.set_position(rows))
        .with_context(|| format!("writing synthetic store {}", args.out.display()))?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&manifest)?);
    } else {
        println!(
            "wrote {} rows (d = {}, {} held out) and {} ground-truth features to {} in {:.1}s",
            manifest.rows,
            manifest.d,
            manifest.eval_rows,
            cfg.features,
            args.out.display(),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
