//! `sae eval --model M --corpus FILE`: the SAE spliced into its model. Three forward passes per batch
//! (clean, reconstruction, zero ablation) -> CE loss recovered, delta LM loss, KL; written to
//! `SAE/eval_spliced.json` for the dashboard. A transcoder reads its input hook and replaces its output
//! hook (metadata.hook_name_out); the zero ablation zeroes the output hook.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use sae_lm::{Model, ModelSpec, TextTokenizer};
use sae_model::{Sae, HOOK_NAME_OUT};
use sae_splice::{spliced_eval, Site, SplicedConfig, SplicedMetrics, SplicedProgress};

/// The file the spliced evaluation writes into the SAE folder.
pub const SPLICED_FILE: &str = "eval_spliced.json";

/// Options of the spliced evaluation (with `--model`).
#[derive(clap::Args, Debug, Clone)]
pub struct SplicedArgs {
    /// Causal LM to splice the SAE into: Hugging Face id, local folder or .gguf (with --corpus).
    #[arg(long, requires = "corpus")]
    model: Option<String>,
    /// Hub revision of --model.
    #[arg(long, requires = "model")]
    revision: Option<String>,
    /// Never use the network for --model.
    #[arg(long, requires = "model")]
    offline: bool,
    /// Hugging Face hub cache folder (default: $SAE_HF_CACHE, else the usual HF locations).
    #[arg(long, requires = "model")]
    cache_dir: Option<PathBuf>,
    /// Corpus for the spliced evaluation: .txt / .jsonl files or folders.
    #[arg(long, num_args = 1.., requires = "model")]
    corpus: Vec<PathBuf>,
    /// Hook to splice at (default: the SAE's hook_name); when --sae holds one SAE per hook
    /// (sparsify's layout), also the subfolder to read (with or without --model).
    #[arg(long)]
    pub(crate) hook: Option<String>,
    /// For a transcoder: the hook whose activation its prediction replaces (default: the
    /// transcoder's metadata.hook_name_out), after --hook in the forward pass.
    #[arg(long, requires = "model")]
    hook_out: Option<String>,
    /// Tokens per context (default: the SAE's context_size, else 128).
    #[arg(long, requires = "model")]
    ctx_len: Option<usize>,
    /// Tokens per forward batch.
    #[arg(long, default_value_t = 1024)]
    batch_tokens: usize,
    /// Positions to score (0: the whole corpus).
    #[arg(long, default_value_t = 16384)]
    max_tokens: u64,
    /// Do not put BOS before contexts (keep this as the SAE's harvest did).
    #[arg(long, requires = "model")]
    no_bos: bool,
}

/// A model and its tokenizer, loaded once for any number of spliced evaluations.
pub struct Loaded {
    name: String,
    /// The model.
    pub model: Model,
    tok: TextTokenizer,
}

/// Resolves and loads `--model` and its tokenizer (BOS as `--no-bos` says).
pub fn load(a: &SplicedArgs) -> anyhow::Result<Loaded> {
    let name = a.model.as_deref().context("give --model or --store")?;
    let spec = ModelSpec {
        id_or_path: name.to_string(),
        revision: a.revision.clone(),
        offline: a.offline,
        cache_dir: a.cache_dir.clone(),
    };
    let resolved =
        sae_lm::resolve_model(&spec).with_context(|| format!("cannot resolve model `{name}`"))?;
    let model = Model::load(&resolved, &candle_core::Device::Cpu)
        .with_context(|| format!("cannot load model `{name}`"))?;
    let mut tok = TextTokenizer::load(&resolved)
        .with_context(|| format!("cannot load the tokenizer of `{name}`"))?;
    if !a.no_bos {
        tok.prepend_bos();
    }
    Ok(Loaded {
        name: name.to_string(),
        model,
        tok,
    })
}

pub fn run(a: &SplicedArgs, sae: &Sae, sae_dir: &Path, json: bool) -> anyhow::Result<()> {
    run_loaded(a, &load(a)?, sae, sae_dir, json)
}

/// The spliced evaluation of `sae` in an already loaded model; writes `SAE/eval_spliced.json`.
pub fn run_loaded(
    a: &SplicedArgs,
    lm: &Loaded,
    sae: &Sae,
    sae_dir: &Path,
    json: bool,
) -> anyhow::Result<()> {
    let (name, model, tok) = (lm.name.as_str(), &lm.model, &lm.tok);
    let meta = &sae.cfg.metadata;
    let site = splice_site(a, model, sae, name)?;
    let cfg = SplicedConfig {
        site,
        ctx_len: a.ctx_len.or(meta.context_size).unwrap_or(128),
        batch_tokens: a.batch_tokens,
        max_tokens: (a.max_tokens > 0).then_some(a.max_tokens),
    };
    let corpus = sae_harvest::Corpus::open(&a.corpus).context("cannot open the corpus")?;
    let bar = ProgressBar::new(a.max_tokens.max(1));
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} positions {msg} [ETA {eta}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let mut progress = |p: &SplicedProgress| {
        bar.set_position(p.positions);
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!("{:.0} positions/s", p.positions as f64 / secs));
        ControlFlow::Continue(())
    };
    let mut warn = |w: String| bar.suspend(|| eprintln!("warning: {w}"));
    let sums = spliced_eval(model, tok, &corpus, sae, &cfg, &mut progress, &mut warn)
        .with_context(|| format!("spliced evaluation of {} in `{name}`", sae_dir.display()))?;
    bar.finish_and_clear();
    let metrics = sums.metrics(name, &site);
    let path = sae_dir.join(SPLICED_FILE);
    let text = serde_json::to_string_pretty(&metrics)? + "\n";
    sae_store::atomic_write(&path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    if json {
        println!("{}", serde_json::to_string(&metrics)?);
    } else {
        print_spliced(&metrics);
    }
    Ok(())
}

/// Where the SAE reads (`--hook`, else its hook_name) and writes: its own hook, or for a transcoder
/// `--hook-out`, else its metadata.hook_name_out, which must come after the input hook.
fn splice_site(a: &SplicedArgs, model: &Model, sae: &Sae, name: &str) -> anyhow::Result<Site> {
    let meta = &sae.cfg.metadata;
    let hook_name =
        a.hook.clone().or_else(|| meta.hook_name.clone()).context(
            "the SAE names no hook (hook_name in cfg.json); give --hook blocks.N.hook_...",
        )?;
    let parse = |h: &str| {
        model
            .hook(h)
            .with_context(|| format!("cannot splice at `{h}` in `{name}`"))
    };
    let hook = parse(&hook_name)?;
    if !sae.cfg.is_transcoder() {
        anyhow::ensure!(
            a.hook_out.is_none(),
            "--hook-out is for transcoders; this {} SAE replaces the hook it reads",
            sae.kind()
        );
        return Ok(Site::at(hook));
    }
    let stored = meta.extra.get(HOOK_NAME_OUT).and_then(|v| v.as_str());
    let out_name = a.hook_out.as_deref().or(stored).with_context(|| {
        format!(
            "the transcoder names no output hook (metadata.{HOOK_NAME_OUT} in cfg.json); give \
             --hook-out blocks.N.hook_..."
        )
    })?;
    let out = parse(out_name)?;
    Site::between(hook, out)
        .with_context(|| format!("cannot splice the transcoder from `{hook_name}` to `{out_name}`"))
}

fn print_spliced(m: &SplicedMetrics) {
    let (what, zeroed) = match &m.hook_out {
        Some(out) => {
            println!(
                "Transcoder spliced into {} from {} to {} over {} positions",
                m.model, m.hook, out, m.tokens
            );
            (
                "... with the transcoder's prediction in place of the output hook",
                "... with the output hook zero-ablated",
            )
        }
        None => {
            println!(
                "SAE spliced into {} at {} over {} positions",
                m.model, m.hook, m.tokens
            );
            (
                "... with the SAE's reconstruction spliced in",
                "... with the activation zero-ablated",
            )
        }
    };
    let opt = |v: Option<f64>| v.unwrap_or(f64::NAN);
    let lines = [
        (
            "ce_clean",
            m.ce_clean,
            "next-token CE of the clean model (nats)",
        ),
        ("ce_sae", m.ce_sae, what),
        ("ce_zero", m.ce_zero, zeroed),
        (
            "ce_loss_recovered",
            opt(m.ce_loss_recovered),
            "(ce_zero - ce_sae) / (ce_zero - ce_clean)",
        ),
        ("delta_lm_loss", m.delta_lm_loss, "ce_sae - ce_clean"),
        ("kl_sae", m.kl_sae, "mean KL(clean || spliced)"),
        ("kl_zero", m.kl_zero, "mean KL(clean || zero-ablated)"),
        (
            "kl_div_score",
            opt(m.kl_div_score),
            "(kl_zero - kl_sae) / kl_zero",
        ),
    ];
    for (name, value, what) in lines {
        println!("  {name:<18} {value:>12.6}   {what}");
    }
}
