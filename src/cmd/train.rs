//! `sae train`: train a sparse autoencoder on an activation store (progress bar, metrics.jsonl,
//! checkpoints, `--resume`), saving a SAELens-format folder.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sae_train::{
    ArchConfig, ArchKind, Backend, Observer, Resolved, RunSpec, StepMetrics, TrainConfig,
};

/// Architecture names on the command line.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Arch {
    /// TopK with AuxK (Gao et al. 2024).
    Topk,
    /// BatchTopK, saved as JumpReLU with a global threshold (Bussmann et al. 2024).
    Batchtopk,
    /// ReLU with decoder-norm-weighted L1 (Anthropic, April 2024).
    ReluL1,
    /// JumpReLU with a straight-through L0 penalty (Gemma Scope).
    Jumprelu,
}

impl From<Arch> for ArchKind {
    fn from(a: Arch) -> ArchKind {
        match a {
            Arch::Topk => ArchKind::TopK,
            Arch::Batchtopk => ArchKind::BatchTopK,
            Arch::ReluL1 => ArchKind::ReluL1,
            Arch::Jumprelu => ArchKind::JumpRelu,
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// Activation store folder (from `sae synth` or `sae harvest`).
    #[arg(long)]
    store: PathBuf,
    /// Output folder for the SAE (SAELens format), metrics.jsonl and checkpoints.
    #[arg(long)]
    out: PathBuf,
    /// TOML config (see configs/); flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Architecture (replaces the config's [arch] table when it names a different one).
    #[arg(long, value_enum)]
    arch: Option<Arch>,
    /// Active latents per row (topk, batchtopk) or the target L0 (jumprelu).
    #[arg(long)]
    k: Option<usize>,
    /// Dictionary size.
    #[arg(long, conflicts_with = "expansion")]
    d_sae: Option<usize>,
    /// Dictionary size as a multiple of the store's d.
    #[arg(long)]
    expansion: Option<f64>,
    /// Optimizer steps.
    #[arg(long)]
    steps: Option<u64>,
    /// Rows per batch.
    #[arg(long)]
    batch: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Seed of the initialisation and the data order.
    #[arg(long)]
    seed: Option<u64>,
    /// Continue the interrupted run in --out from its checkpoint (same config and flags).
    #[arg(long)]
    resume: bool,
    /// Write a checkpoint every N steps (0: none).
    #[arg(long)]
    checkpoint_every: Option<u64>,
    /// MiB of decoded rows in the shuffling buffer (default 256).
    #[arg(long)]
    shuffle_buffer_mib: Option<usize>,
    /// Compute gradients with candle autograd (the slow reference) instead of the hand-derived backward.
    #[arg(long)]
    autograd: bool,
}

/// Applies the flags on top of the config file.
fn resolve_config(args: &Args) -> anyhow::Result<TrainConfig> {
    let mut cfg = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config {}", path.display()))?;
            TrainConfig::from_toml(&text).with_context(|| format!("config {}", path.display()))?
        }
        None => TrainConfig::default(),
    };
    if let Some(a) = args.arch {
        let kind = ArchKind::from(a);
        if cfg.arch.kind() != kind {
            cfg.arch = ArchConfig::default_for(kind, None);
        }
    }
    if let Some(k) = args.k {
        match &mut cfg.arch {
            ArchConfig::TopK { k: ck, .. } | ArchConfig::BatchTopK { k: ck, .. } => *ck = k,
            ArchConfig::JumpRelu { target_l0, .. } => *target_l0 = Some(k as f64),
            ArchConfig::ReluL1 { .. } => {
                anyhow::bail!("--k does not apply to relu-l1 (its sparsity is set by l1_coef)")
            }
        }
    }
    if let Some(n) = args.d_sae {
        cfg.d_sae = Some(n);
    }
    if let Some(e) = args.expansion {
        cfg.d_sae = None;
        cfg.expansion = e;
    }
    macro_rules! set {
        ($($f:ident),*) => { $(if let Some(v) = args.$f { cfg.$f = v; })* };
    }
    set!(steps, batch, lr, seed, checkpoint_every, shuffle_buffer_mib);
    Ok(cfg)
}

/// Progress bar on a terminal; nothing otherwise.
struct Bar {
    bar: ProgressBar,
    batch: usize,
}

impl Observer for Bar {
    fn begin(&mut self, total: u64, start: u64, res: &Resolved) {
        self.bar.set_length(total);
        self.bar.set_position(start);
        self.bar.reset_eta();
        self.bar.println(format!(
            "training d_in {} -> d_sae {}, batch {}, dead window {} tokens",
            res.d_in, res.d_sae, self.batch, res.dead_tokens
        ));
    }

    fn step(&mut self, m: &StepMetrics, rows_per_s: f64) {
        self.bar.set_position(m.step);
        self.bar.set_message(format!(
            "loss {:.4} fvu {:.4} L0 {:.1} dead {:.1}% {:.0} rows/s",
            m.loss,
            m.fvu,
            m.l0,
            100.0 * m.dead_frac,
            rows_per_s
        ));
    }

    fn note(&mut self, msg: &str) {
        if !self.bar.is_hidden() {
            self.bar.println(msg);
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = resolve_config(&args)?;
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(Some(cfg.steps), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut obs = Bar {
        bar,
        batch: cfg.batch,
    };
    let spec = RunSpec {
        store: args.store.clone(),
        out: args.out.clone(),
        cfg,
        resume: args.resume,
        backend: if args.autograd {
            Backend::Autograd
        } else {
            Backend::Fast
        },
    };
    let summary = sae_train::train(&spec, &mut obs).with_context(|| {
        format!(
            "training on {} into {} failed",
            args.store.display(),
            args.out.display()
        )
    })?;
    obs.bar.finish_and_clear();
    if let Some(m) = &summary.last {
        eprintln!(
            "done: {} steps in {:.1}s ({:.0} rows/s); last batch fvu {:.4}, L0 {:.2}, dead {:.1}%; SAE in {}",
            summary.steps_run,
            summary.seconds,
            summary.rows_per_s,
            m.fvu,
            m.l0,
            100.0 * m.dead_frac,
            args.out.display()
        );
    }
    Ok(())
}
