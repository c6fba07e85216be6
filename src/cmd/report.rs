//! `sae report`: per-unit statistics, explanations and scores for an SAE's latents (and the
//! model's own units for comparison), written as `report.json` plus a static `index.html`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use sae_lm::{resolve_model, TextTokenizer, TokenText};
use sae_model::Sae;
use sae_report::{
    build_report, write_dashboard, write_report, Control, ReportError, ReportInputs, ReportSettings,
};
use sae_store::{ShuffleOptions, Source, Split, Store};
use sae_train::{Backend, TrainConfig, Trainer};

use super::report_lens::{load_lens, offline_spec};

/// A control group for `--control`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ControlArg {
    /// The same architecture and width as the SAE, initialised exactly as its training run was
    /// (the folder's train_config.toml, the same initialisation sample), never trained.
    Untrained,
    /// Random unit directions in the SAE's input space (one per dimension), active above
    /// --dense-fraction x their maximum like basis directions.
    Random,
}

#[derive(clap::Args)]
pub struct Args {
    /// SAE folder (ours, SAELens or sparsify), or a folder of one SAE per hook with --hook.
    #[arg(long)]
    pub sae: PathBuf,
    /// The hook's subfolder, when --sae holds one SAE per hook (sparsify's layout).
    #[arg(long)]
    pub hook: Option<String>,
    /// Activation store the SAE reads; it must hold token ids.
    #[arg(long)]
    pub store: PathBuf,
    /// For a transcoder: the store of the hook it writes (e.g. `blocks.3.hook_mlp_out`),
    /// row-aligned with --store, as `sae eval --target-store` takes it; the reconstruction
    /// figures (fvu, mse, l2_ratio, ...) compare the transcoder's output with its held-out rows.
    #[arg(long = "target-store", alias = "target")]
    pub target_store: Option<PathBuf>,
    /// Store of the model's MLP neurons at the same layer (`blocks.{i}.mlp.hook_post`), for the
    /// neuron-vs-latent comparison.
    #[arg(long)]
    pub neurons: Option<PathBuf>,
    /// Model (hub id or local folder) for token text and, for causal LMs, the logit lens.
    /// Without it, token text comes from the store's model (from the local cache).
    #[arg(long)]
    pub model: Option<String>,
    /// A tokenizer.json to read token text from instead of the model's.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Output folder: report.json, index.html and its chunk folder units-<hash>/.
    #[arg(long)]
    pub out: PathBuf,
    /// Top-activating contexts kept per unit [default: 10].
    #[arg(long)]
    pub top: Option<usize>,
    /// Analyse at most this many rows of each store (from the start).
    #[arg(long)]
    pub max_rows: Option<u64>,
    /// F1 at or above which a unit counts as monosemantic [default: 0.5].
    #[arg(long)]
    pub mono_threshold: Option<f64>,
    /// Units active on fewer rows are left out of the score summaries [default: 10].
    #[arg(long)]
    pub min_active: Option<u64>,
    /// A neuron or basis direction is active above this fraction of its maximum [default: 0.5].
    #[arg(long)]
    pub dense_fraction: Option<f64>,
    /// Seed of the sampling of quantile examples, of the fit / score split of documents, of the
    /// bootstrap and of the random directions [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Add a control group analysed like the others (repeat for both).
    #[arg(long = "control", value_enum)]
    pub controls: Vec<ControlArg>,
    /// Worker threads analysing groups in parallel [default: 2].
    #[arg(long)]
    pub threads: Option<usize>,
}

/// The seed offset sae-train draws its initialisation sample with (sae-train's
/// `member::INIT_SEED_XOR`, private there; the controls test checks they agree).
const INIT_SEED_XOR: u64 = 0x1417_5EED;

/// The SAE as its `sae train` run initialised it before the first step: the folder's
/// train_config.toml, the same initialisation sample of the store's train split (input scale,
/// geometric median), the same seeded random decoder; never trained.
fn untrained_sae(sae_dir: &Path, sae: &Sae, store: &Store) -> anyhow::Result<Sae> {
    let path = sae_dir.join(sae_report::TRAIN_CONFIG_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "--control untrained needs the SAE's training config {} (sae train writes it)",
            path.display()
        )
    })?;
    let cfg = TrainConfig::from_toml(&text)
        .with_context(|| format!("reading the training config {}", path.display()))?;
    let res = cfg
        .resolve(store.d())
        .with_context(|| format!("resolving the training config {}", path.display()))?;
    anyhow::ensure!(
        res.d_sae == sae.cfg.d_sae,
        "{} describes {} latents but the SAE has {}",
        path.display(),
        res.d_sae,
        sae.cfg.d_sae
    );
    let n = (cfg.init_sample_rows as u64)
        .min(store.split_rows(Split::Train))
        .max(1) as usize;
    let opts = ShuffleOptions {
        batch: n,
        buffer_rows: cfg.shuffle_buffer_rows(store.d()).max(n),
        seed: cfg.seed ^ INIT_SEED_XOR,
    };
    let sample = store
        .shuffled(Split::Train, opts)
        .next_batch()
        .with_context(|| {
            format!(
                "reading the initialisation sample of {}",
                store.dir().display()
            )
        })?;
    let trainer = Trainer::new(cfg, res, &sample, Backend::Fast)
        .context("initialising the untrained control SAE")?;
    Ok(trainer.to_sae(sae.cfg.metadata.clone())?)
}

/// Token text (each token as it reads in running text): an explicit tokenizer.json, the given
/// model's tokenizer, or the tokenizer of the model the store was harvested from.
fn token_text(args: &Args, store: &Store) -> anyhow::Result<TokenText> {
    if let Some(path) = &args.tokenizer {
        if !path.is_file() {
            let msg = format!("{} does not exist", path.display());
            return Err(ReportError::MissingTokenizer(msg).into());
        }
        let tok = TextTokenizer::from_file(path).map_err(|e| ReportError::BadTokenizer {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        return Ok(TokenText::new(tok));
    }
    let model = match (&args.model, &store.manifest().source) {
        (Some(m), _) => m.clone(),
        (None, Source::Harvest(h)) => h.model_id.clone(),
        (
            None,
            Source::Import(sae_store::ImportSource {
                model_id: Some(m), ..
            }),
        ) => m.clone(),
        (None, Source::Synthetic(_) | Source::Import(_)) => {
            return Err(ReportError::MissingTokenizer(format!(
                "the store {} records no model (synthetic or imported without --model); pass --tokenizer FILE (a tokenizer.json) or --model M",
                store.dir().display()
            ))
            .into())
        }
    };
    let resolved = resolve_model(&offline_spec(&model)).map_err(|e| {
        ReportError::MissingTokenizer(format!(
            "cannot find model {model:?} locally ({e}); run scripts/fetch-models.sh or `sae fetch`, or pass --tokenizer FILE"
        ))
    })?;
    let text = TokenText::load(&resolved).map_err(|e| {
        ReportError::MissingTokenizer(format!("model {model:?} has no usable tokenizer: {e}"))
    })?;
    Ok(text)
}

pub fn run(mut args: Args) -> anyhow::Result<()> {
    args.sae = sae_model::load::resolve(&args.sae, args.hook.as_deref())
        .with_context(|| format!("loading the SAE {}", args.sae.display()))?;
    let sae =
        Sae::load(&args.sae).with_context(|| format!("loading the SAE {}", args.sae.display()))?;
    let store = Store::open(&args.store)
        .with_context(|| format!("opening the store {}", args.store.display()))?;
    let neurons = match &args.neurons {
        Some(p) => Some(
            Store::open(p).with_context(|| format!("opening the neurons store {}", p.display()))?,
        ),
        None => None,
    };
    let target = match &args.target_store {
        Some(p) => Some(
            Store::open(p).with_context(|| format!("opening the target store {}", p.display()))?,
        ),
        None => None,
    };
    // Check compatibility before loading anything heavy.
    sae_report::check_inputs(&sae, &store, neurons.as_ref())?;
    sae_report::check_target(&sae, &store, target.as_ref())?;
    if sae.cfg.is_transcoder() && args.controls.contains(&ControlArg::Untrained) {
        return Err(ReportError::UntrainedTranscoder.into());
    }
    let text = token_text(&args, &store)?;
    let mut notes = Vec::new();
    let lens = load_lens(args.model.as_deref(), &sae, target.as_ref(), &mut notes)?;
    let mut settings = ReportSettings::default();
    settings.analysis.top_n = args.top.unwrap_or(settings.analysis.top_n);
    settings.analysis.seed = args.seed.unwrap_or(settings.analysis.seed);
    settings.max_rows = args.max_rows;
    settings.mono_threshold = args.mono_threshold.unwrap_or(settings.mono_threshold);
    settings.min_active = args.min_active.unwrap_or(settings.min_active);
    settings.dense_active_fraction = args
        .dense_fraction
        .unwrap_or(settings.dense_active_fraction);
    anyhow::ensure!(settings.analysis.top_n > 0, "--top must be at least 1");
    anyhow::ensure!(
        (0.0..1.0).contains(&settings.dense_active_fraction),
        "--dense-fraction must be in [0, 1)"
    );
    settings.threads = args.threads.unwrap_or(settings.threads);
    anyhow::ensure!(settings.threads > 0, "--threads must be at least 1");
    for c in &args.controls {
        let c = match c {
            ControlArg::Untrained => Control::Untrained,
            ControlArg::Random => Control::Random,
        };
        if !settings.controls.contains(&c) {
            settings.controls.push(c);
        }
    }
    let untrained = match args.controls.contains(&ControlArg::Untrained) {
        true => Some(untrained_sae(&args.sae, &sae, &store)?),
        false => None,
    };
    let text_fn = |id: u32| text.token(id);
    let lens_fn = |dir: &[f32]| -> Result<Vec<f32>, String> {
        match &lens {
            Some(l) => l.logits(dir).map_err(|e| e.to_string()),
            None => Err("no model".into()),
        }
    };
    let inputs = ReportInputs {
        sae: &sae,
        sae_dir: &args.sae,
        store: &store,
        target: target.as_ref(),
        neurons: neurons.as_ref(),
        untrained: untrained.as_ref(),
        settings,
        text: &text_fn,
        lens: lens.as_ref().map(|_| &lens_fn as sae_report::LensFn),
        notes,
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg:>18} [{bar:40}] {percent:>3}% {per_sec} ETA {eta}")
            .expect("valid progress template")
            .progress_chars("=> "),
    );
    let report = build_report(&inputs, &mut |p| {
        bar.set_length(p.total);
        bar.set_position(p.done);
        bar.set_message(p.phase.to_string());
    })?;
    bar.finish_and_clear();
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    write_report(&args.out, &report)
        .with_context(|| format!("writing the report into {}", args.out.display()))?;
    write_dashboard(&args.out, &report)
        .with_context(|| format!("writing the dashboard into {}", args.out.display()))?;
    print_groups(&report);
    print_side_figures(&report);
    println!(
        "report: {}",
        args.out.join(sae_report::REPORT_FILE).display()
    );
    println!("dashboard: {}", args.out.join("index.html").display());
    Ok(())
}

fn f3(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{v:.3}"))
}

/// One line per group (held-out scores, bootstrap interval, in-sample beside), then the
/// latents-minus-group differences.
fn print_groups(report: &sae_report::Report) {
    println!("held-out F1: explanations chosen on half of the documents, scored on the other half");
    for g in &report.groups {
        let s = &g.summary;
        let ci = s
            .median_f1_ci
            .map_or(String::new(), |c| format!(" [{:.3}, {:.3}]", c.lo, c.hi));
        let bands: Vec<String> = s
            .median_band_precision
            .iter()
            .map(|b| format!("{:.2}", b.1))
            .collect();
        println!(
            "{:<50} units {:>5}  scored {:>5}  unscored {:>4}  median F1 {}{ci}  in-sample {}  monosemantic (F1 >= {}) {:>4} ({})  precision top/mid/bottom {}",
            g.label,
            s.units,
            s.scored,
            s.unscored,
            f3(s.median_f1),
            f3(s.in_sample_median_f1),
            s.mono_threshold,
            s.monosemantic,
            s.monosemantic_frac
                .map_or("-".into(), |v| format!("{:.1}%", 100.0 * v)),
            if bands.is_empty() { "-".into() } else { bands.join("/") },
        );
    }
    for c in &report.comparisons {
        let ci = c
            .interval
            .map_or(String::new(), |i| format!(" [{:+.3}, {:+.3}]", i.lo, i.hi));
        println!(
            "median F1 of latents minus {:<40} {}{ci}",
            c.label,
            c.difference.map_or("-".into(), |d| format!("{d:+.3}")),
        );
    }
}

/// One line each for the training curves and the spliced evaluation, when the SAE folder has them.
fn print_side_figures(report: &sae_report::Report) {
    match &report.training {
        Some(t) => {
            let last = |m: &str| t.series(m).map_or("-".into(), |s| format!("{:.4}", s.last));
            println!(
                "training curves: {} logged steps to step {}; last loss {}, fvu {}, l0 {}, dead_frac {}",
                t.logged_steps,
                t.last_step,
                last("loss"),
                last("fvu"),
                last("l0"),
                last("dead_frac")
            );
        }
        None => println!(
            "training curves: none ({} has no {})",
            report.sae.path,
            sae_report::METRICS_FILE
        ),
    }
    if let Some(m) = &report.heldout_eval {
        let from = match (&report.target, report.sae.transcoder_line()) {
            (Some(t), Some(line)) => format!("{line}, against the target store {}", t.store),
            (None, Some(line)) => format!("{line}, from {}", sae_report::HELDOUT_EVAL_FILE),
            _ => format!("from {}", sae_report::HELDOUT_EVAL_FILE),
        };
        println!(
            "held-out reconstruction ({from}): fvu {:.4}, mse {:.4e}, l0 {:.2}, dead_frac {:.4}, l2_ratio {:.4}",
            m.fvu, m.mse, m.l0, m.dead_frac, m.l2_ratio
        );
    }
    if let Some(e) = &report.spliced_eval {
        let v = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.4}"));
        println!(
            "spliced into the model: ce_loss_recovered {}, delta_lm_loss {}, kl_div_score {} ({} tokens)",
            v(e.ce_loss_recovered),
            v(e.delta_lm_loss),
            v(e.kl_div_score),
            e.tokens.map_or("?".into(), |t| t.to_string())
        );
    }
}
