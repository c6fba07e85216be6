//! `sae train`: train a sparse autoencoder on an activation store (progress bar, metrics.jsonl,
//! checkpoints, `--resume`), saving a SAELens-format folder; or several in one process, each
//! batch read once: the `[[sweep]]` entries of a config, one per store, one per hook of a harvest.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sae_store::OutputLock;
use sae_train::{
    ArchConfig, ArchKind, Backend, MemberStart, MultiObserver, MultiOptions, MultiSummary,
    Observer, Resolved, RunSpec, StepMetrics, SweepConfig, TrainConfig,
};

/// Architecture names on the command line.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Arch {
    /// TopK with AuxK (Gao et al. 2024).
    Topk,
    /// BatchTopK, saved as JumpReLU with a global threshold (Bussmann et al. 2024).
    Batchtopk,
    /// Matryoshka BatchTopK: nested prefixes that reconstruct on their own (Bussmann et al. 2025),
    /// saved as JumpReLU with the prefix widths in cfg.json.
    MatryoshkaBatchtopk,
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
            Arch::MatryoshkaBatchtopk => ArchKind::MatryoshkaBatchTopK,
            Arch::ReluL1 => ArchKind::ReluL1,
            Arch::Jumprelu => ArchKind::JumpRelu,
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// Activation store folder (from `sae synth` or `sae harvest`). Repeat it for one SAE per
    /// store (into OUT/<store folder name>/), or give a harvest folder for one per hook.
    #[arg(long, required = true)]
    store: Vec<PathBuf>,
    /// Output folder for the SAE (SAELens format), metrics.jsonl and checkpoints.
    #[arg(long)]
    out: PathBuf,
    /// TOML config (see configs/); with `[[sweep]]` entries one SAE per entry, into OUT/<name>/,
    /// all from one read of the data. Flags below override it (in every entry).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Architecture (replaces the config's [arch] table when it names a different one).
    #[arg(long, value_enum)]
    arch: Option<Arch>,
    /// Active latents per row (topk, batchtopk) or the target L0 (jumprelu).
    #[arg(long)]
    k: Option<usize>,
    /// Matryoshka groups as shares of the dictionary, innermost first, summing to 1
    /// (default 0.03125,0.96875: one inner prefix of 1/32 of the latents, then all of them).
    #[arg(long, value_delimiter = ',')]
    group_fractions: Vec<f64>,
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
    /// Continue the interrupted run in --out from its checkpoint (same config and flags); several
    /// SAEs resume each from its own checkpoint, and those that had finished are skipped.
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
    /// Train a transcoder: predict this store's rows (e.g. `blocks.3.hook_mlp_out`) from the rows
    /// of --store (e.g. `blocks.3.ln2.hook_normalized`); the two must be row-aligned (one harvest).
    #[arg(long)]
    target_store: Option<PathBuf>,
    /// With --target-store: add a linear skip connection W_skip (a skip transcoder).
    #[arg(long, requires = "target_store")]
    skip: bool,
}

/// The config file (or the defaults) with the flags on top, in every sweep entry.
fn resolve_config(args: &Args) -> anyhow::Result<SweepConfig> {
    let mut sweep = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config {}", path.display()))?;
            SweepConfig::from_toml(&text).with_context(|| format!("config {}", path.display()))?
        }
        None => SweepConfig::single(TrainConfig::default()),
    };
    sweep.for_each_mut(|cfg| apply_flags(args, cfg))?;
    Ok(sweep)
}

/// Applies the flags on top of one config.
fn apply_flags(args: &Args, cfg: &mut TrainConfig) -> anyhow::Result<()> {
    if let Some(a) = args.arch {
        let kind = ArchKind::from(a);
        if cfg.arch.kind() != kind {
            cfg.arch = ArchConfig::default_for(kind, None);
        }
    }
    if let Some(k) = args.k {
        match &mut cfg.arch {
            ArchConfig::TopK { k: ck, .. }
            | ArchConfig::BatchTopK { k: ck, .. }
            | ArchConfig::MatryoshkaBatchTopK { k: ck, .. } => *ck = k,
            ArchConfig::JumpRelu { target_l0, .. } => *target_l0 = Some(k as f64),
            ArchConfig::ReluL1 { .. } => {
                anyhow::bail!("--k does not apply to relu-l1 (its sparsity is set by l1_coef)")
            }
        }
    }
    if !args.group_fractions.is_empty() {
        match &mut cfg.arch {
            ArchConfig::MatryoshkaBatchTopK {
                group_fractions, ..
            } => group_fractions.clone_from(&args.group_fractions),
            other => anyhow::bail!(
                "--group-fractions applies to matryoshka-batchtopk, not {}",
                other.name()
            ),
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
    if args.skip {
        cfg.skip = true;
    }
    Ok(())
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

fn new_bar(len: u64, template: &str) -> ProgressBar {
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let sweep = resolve_config(&args)?;
    let backend = if args.autograd {
        Backend::Autograd
    } else {
        Backend::Fast
    };
    let mut stores = Vec::new();
    let mut per_store = args.store.len() > 1;
    for s in &args.store {
        match sae_train::hook_stores(s) {
            Some(hooks) => {
                per_store = true;
                stores.extend(hooks);
            }
            None => stores.push(s.clone()),
        }
    }
    let specs = sae_train::plan(&stores, per_store, &args.out, &sweep, args.resume, backend)
        .with_context(|| format!("cannot lay out the SAEs in {}", args.out.display()))?;
    if let Some(t) = &args.target_store {
        if specs.len() > 1 || per_store || sweep.is_sweep() {
            anyhow::bail!(
                "--target-store trains one transcoder: give one input store and no [[sweep]] entries"
            );
        }
        let mut spec = specs.into_iter().next().context("no transcoder to train")?;
        spec.target = Some(t.clone());
        return run_one(&args, spec);
    }
    if specs.len() > 1 || per_store || sweep.is_sweep() {
        return run_many(&args, &specs);
    }
    let spec = specs.into_iter().next().context("no SAE to train")?;
    run_one(&args, spec)
}

/// One SAE: the progress bar of its steps and a summary line.
fn run_one(args: &Args, spec: RunSpec) -> anyhow::Result<()> {
    let bar = new_bar(
        spec.cfg.steps,
        "{bar:30} {pos}/{len} steps  {msg}  ETA {eta}",
    );
    let mut obs = Bar {
        bar,
        batch: spec.cfg.batch,
    };
    let summary = sae_train::train(&spec, &mut obs).with_context(|| {
        format!(
            "training on {} into {} failed",
            spec.store.display(),
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

/// Progress of several SAEs: one bar over all their steps.
pub(super) struct ManyBar {
    bar: ProgressBar,
    names: Vec<String>,
}

impl ManyBar {
    /// A bar for the SAEs called `names` (one per spec).
    pub(super) fn new(names: Vec<String>) -> ManyBar {
        let bar = new_bar(0, "{bar:30} {pos}/{len} SAE steps  {msg}  ETA {eta}");
        ManyBar { bar, names }
    }

    /// Clears the bar.
    pub(super) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// `out` relative to the run's output folder.
fn short(out: &Path, root: &Path) -> String {
    let rel = out.strip_prefix(root).unwrap_or(out);
    rel.display().to_string()
}

impl MultiObserver for ManyBar {
    fn begin(&mut self, members: &[MemberStart]) {
        let todo: u64 = members.iter().map(|m| m.total - m.start).sum();
        self.bar.set_length(todo);
        self.bar.reset_eta();
        for (m, name) in members.iter().zip(&self.names) {
            let from = match m.start {
                0 => String::new(),
                s if m.skipped => format!(" (finished: skipped, {s} steps)"),
                s => format!(" (resumed at step {s})"),
            };
            self.bar.println(format!(
                "{name}: {} d_in {} -> d_sae {}, {} steps{from}",
                m.store.display(),
                m.res.d_in,
                m.res.d_sae,
                m.total
            ));
        }
    }

    fn step(&mut self, member: usize, m: &StepMetrics, rows_per_s: f64) {
        self.bar.inc(1);
        let name = &self.names[member];
        self.bar.set_message(format!(
            "{name}: fvu {:.4} L0 {:.1} dead {:.1}% {:.0} rows/s",
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

/// Several SAEs in one process (the output folder locked as a whole too).
fn run_many(args: &Args, specs: &[RunSpec]) -> anyhow::Result<()> {
    let _lock = OutputLock::acquire(&args.out, "sae train")
        .with_context(|| format!("cannot write into {}", args.out.display()))?;
    let names: Vec<String> = specs.iter().map(|s| short(&s.out, &args.out)).collect();
    let mut obs = ManyBar::new(names.clone());
    let opts = MultiOptions {
        skip_finished: args.resume,
    };
    let summary = sae_train::train_many(specs, &opts, &mut obs).with_context(|| {
        format!(
            "training {} SAEs into {} failed",
            specs.len(),
            args.out.display()
        )
    })?;
    obs.finish();
    report_many(&summary, &names);
    Ok(())
}

pub(super) fn report_many(summary: &MultiSummary, names: &[String]) {
    for (r, name) in summary.members.iter().zip(names) {
        match &r.last {
            Some(m) => eprintln!(
                "{name}: {} steps; last batch fvu {:.4}, L0 {:.2}, dead {:.1}%",
                r.steps_run,
                m.fvu,
                m.l0,
                100.0 * m.dead_frac
            ),
            None => eprintln!("{name}: already finished"),
        }
    }
    for s in &summary.streams {
        eprintln!(
            "read {} batches of {} once for {} SAEs ({} SAE steps)",
            s.batches_read,
            s.store.display(),
            s.members.len(),
            s.sae_steps
        );
    }
    eprintln!("done in {:.1}s", summary.seconds);
}
