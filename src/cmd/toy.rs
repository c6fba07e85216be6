//! `sae toy`: the toy models of superposition (Elhage et al. 2022), their measurements, the three
//! experiments and our SAE on their hidden layer; JSON, SVG plots and one HTML page in --out.

use std::path::PathBuf;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use sae_toy::{Experiment, ModelKind, Progress, Region, ToyConfig, ToyReport, REPORT_JSON};

/// Train the paper's toy models (AdamW lr 1e-3, batch 1024, 10,000 steps by default), measure
/// superposition, and check that our SAE recovers the features hidden in the hidden layer.
#[derive(clap::Args)]
pub struct Args {
    /// Output folder: toy.json, plots/*.svg, index.html, sae/ (stores and SAEs).
    #[arg(long)]
    out: PathBuf,
    /// TOML config (see configs/toy.toml); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Experiment to run (repeatable): intro, phase, dimensionality. Default: the config's (all).
    #[arg(long = "experiment", value_parser = parse_experiment)]
    experiments: Vec<Experiment>,
    /// Optimizer steps of every model.
    #[arg(long)]
    steps: Option<u64>,
    /// Batch per instance.
    #[arg(long)]
    batch: Option<usize>,
    /// AdamW learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Seed of initialisation, data and SAE.
    #[arg(long)]
    seed: Option<u64>,
    /// Train with the candle-autograd reference step (slower, same result up to rounding).
    #[arg(long)]
    autograd: bool,
    /// Experiment 1: features n.
    #[arg(long)]
    features: Option<usize>,
    /// Experiment 1: hidden dimensions m.
    #[arg(long)]
    hidden: Option<usize>,
    /// Experiment 1: importance I_i = r^i.
    #[arg(long)]
    importance_decay: Option<f64>,
    /// Experiment 1: sparsities S, comma-separated (one instance each).
    #[arg(long, value_delimiter = ',')]
    sparsities: Option<Vec<f64>>,
    /// Skip the SAE trained on experiment 1's hidden layers.
    #[arg(long)]
    no_sae: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn parse_experiment(s: &str) -> Result<Experiment, String> {
    match s {
        "intro" => Ok(Experiment::Intro),
        "phase" => Ok(Experiment::Phase),
        "dimensionality" => Ok(Experiment::Dimensionality),
        o => Err(format!(
            "unknown experiment {o:?} (expected intro, phase or dimensionality)"
        )),
    }
}

/// The config file (if any) with the flags applied.
fn resolve(args: &Args) -> anyhow::Result<ToyConfig> {
    let mut cfg = match &args.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            ToyConfig::from_toml(&text).with_context(|| format!("{}", p.display()))?
        }
        None => ToyConfig::default(),
    };
    if !args.experiments.is_empty() {
        cfg.experiments = args.experiments.clone();
    }
    let t = &mut cfg.train;
    t.steps = args.steps.unwrap_or(t.steps);
    t.batch = args.batch.unwrap_or(t.batch);
    t.lr = args.lr.unwrap_or(t.lr);
    t.seed = args.seed.unwrap_or(t.seed);
    t.autograd |= args.autograd;
    let i = &mut cfg.intro;
    i.features = args.features.unwrap_or(i.features);
    i.hidden = args.hidden.unwrap_or(i.hidden);
    i.importance_decay = args.importance_decay.unwrap_or(i.importance_decay);
    if let Some(s) = &args.sparsities {
        i.sparsities = s.clone();
    }
    if args.no_sae {
        cfg.sae.enabled = false;
    }
    Ok(cfg)
}

struct Bar {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Progress for Bar {
    fn begin(&mut self, label: &str, total: u64) {
        if self.quiet {
            return;
        }
        let bar = ProgressBar::new(total);
        let style =
            ProgressStyle::with_template("{msg:32} {bar:30} {pos}/{len} {elapsed} loss {prefix}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(label.to_string());
        self.bar = Some(bar);
    }
    fn step(&mut self, step: u64, loss: f64) {
        if let Some(b) = &self.bar {
            if step.is_multiple_of(50) {
                b.set_position(step);
                b.set_prefix(format!("{loss:.4}"));
            }
        }
    }
    fn end(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = resolve(&args)?;
    cfg.validate()?;
    if args.out.join(REPORT_JSON).exists() || args.out.join("sae").exists() {
        bail!(
            "{} already holds a toy report (toy.json or sae/); choose another output folder",
            args.out.display()
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut bar = Bar {
        bar: None,
        quiet: args.quiet,
    };
    let report = sae_toy::run(&cfg, &args.out, &mut bar).context("sae toy")?;
    sae_toy::write_outputs(&args.out, &report)
        .with_context(|| format!("writing {}", args.out.display()))?;
    print_summary(&report);
    println!("wrote {}", args.out.join("index.html").display());
    Ok(())
}

fn print_summary(r: &ToyReport) {
    if let Some(intro) = &r.intro {
        println!(
            "experiment 1: n = {}, m = {}, importance {}^i",
            intro.features, intro.hidden, intro.importance_decay
        );
        for m in &intro.models {
            let s: Vec<String> = m
                .instances
                .iter()
                .map(|i| format!("S={}: {}", i.sparsity, i.geometry.represented))
                .collect();
            println!(
                "  {:12} represented features  {}",
                m.kind.name(),
                s.join("  ")
            );
            if m.kind == ModelKind::HiddenRelu {
                let f: Vec<String> = m
                    .instances
                    .iter()
                    .map(|i| format!("{:.2}", i.mean_features_per_neuron.unwrap_or(0.0)))
                    .collect();
                println!("  {:12} features per neuron   {}", "", f.join("  "));
                if let Some(ck) = &m.count_kurtosis {
                    println!("  {:12} feature count vs kurtosis over {} neurons: pearson {}  spearman {}", "", ck.units, opt(ck.pearson), opt(ck.spearman));
                }
            }
        }
        for p in &intro.sae {
            let lat = p
                .latent_features
                .map(|v| format!("  features per latent {v:.2}"))
                .unwrap_or_default();
            let neu = p
                .neuron_features
                .map(|v| format!("  per neuron {v:.2}"))
                .unwrap_or_default();
            println!("  SAE on {} S={}: {} represented features  mmcs {:.4}  recovered_frac {:.3}  fvu {:.3}{lat}{neu}", p.kind.name(), p.sparsity, p.represented.len(), p.mmcs, p.recovered_frac, p.fvu);
        }
    }
    if let Some(cells) = &r.phase {
        let count = |g: Region| cells.iter().filter(|c| c.region == g).count();
        println!(
            "experiment 2 (n = 2, m = 1): {} cells: feature 2 not represented {}, dedicated dimension {}, antipodal superposition {}, other {}",
            cells.len(), count(Region::NotRepresented), count(Region::Dedicated), count(Region::Superposition), count(Region::Other)
        );
    }
    if let Some(d) = &r.dimensionality {
        let s: Vec<String> = d
            .levels
            .iter()
            .map(|l| format!("{:.3}", l.d_star))
            .collect();
        println!(
            "experiment 3: D* over 1/(1-S) = {:.1}..{:.1}: {}",
            d.levels.first().map_or(0.0, |l| l.inverse_density),
            d.levels.last().map_or(0.0, |l| l.inverse_density),
            s.join(" ")
        );
        let plat: Vec<String> = d
            .plateau
            .iter()
            .map(|&i| format!("{:.1}", d.levels[i].inverse_density))
            .collect();
        println!(
            "  plateau |D* - 1/2| <= 0.05 at 1/(1-S) = [{}]; most populated D_i bin there: {}",
            plat.join(", "),
            opt(d.plateau_mode)
        );
    }
    println!("{:.1} s", r.seconds);
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.3}"))
}
