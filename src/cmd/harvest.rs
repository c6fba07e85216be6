//! `sae harvest`: run a model over a corpus and store activations at hook points (one store per hook).

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use sae_harvest::HarvestConfig;
use sae_lm::{Model, ModelSpec, ResolvedModel, TextTokenizer};

/// Which model, shared by `harvest`, `hooks` and `fetch`.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// Hugging Face model id (ORG/NAME), a local model folder, or a .gguf file.
    #[arg(long)]
    pub model: String,
    /// Hub revision: branch, tag or commit (default: main).
    #[arg(long)]
    pub revision: Option<String>,
    /// Never use the network: resolve from the cache only (also HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    /// Hugging Face hub cache folder (default: $SAE_HF_CACHE, else $HF_HUB_CACHE, $HF_HOME/hub,
    /// ~/.cache/huggingface/hub).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
}

impl ModelArgs {
    /// The library's model spec.
    pub fn spec(&self) -> ModelSpec {
        ModelSpec {
            id_or_path: self.model.clone(),
            revision: self.revision.clone(),
            offline: self.offline,
            cache_dir: self.cache_dir.clone(),
        }
    }

    /// Resolves and loads the model and its tokenizer.
    pub fn load(&self) -> anyhow::Result<(ResolvedModel, Model)> {
        let resolved = sae_lm::resolve_model(&self.spec())
            .with_context(|| format!("cannot resolve model `{}`", self.model))?;
        let model = Model::load(&resolved, &candle_core::Device::Cpu).with_context(|| {
            format!(
                "cannot load model `{}` from {}",
                self.model,
                resolved.dir.display()
            )
        })?;
        Ok((resolved, model))
    }
}

/// On-disk element type of the stores.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum DTypeArg {
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
    /// bfloat16.
    Bf16,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Hook point, e.g. blocks.3.hook_resid_post (repeat for several; one store each). `sae hooks` lists them.
    #[arg(long = "hook", required = true)]
    hooks: Vec<String>,
    /// Corpus: .txt files (one document each), .jsonl files (field "text" per line), or folders of them.
    #[arg(long, required = true, num_args = 1..)]
    corpus: Vec<PathBuf>,
    /// Output folder; the store of hook H goes to OUT/H/. An interrupted harvest into OUT resumes.
    #[arg(long)]
    out: PathBuf,
    /// Tokens per context, special tokens included.
    #[arg(long, default_value_t = 128)]
    ctx_len: usize,
    /// Stop after this many stored tokens (rows per hook).
    #[arg(long)]
    max_tokens: Option<u64>,
    /// Contexts per forward pass: a batch holds up to batch x ctx-len tokens of contexts packed end to end
    /// (short documents fill it instead of padding it; a context never spans two documents).
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// On-disk element type.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: DTypeArg,
    /// Also store special-token positions (BOS, [CLS], [SEP]).
    #[arg(long)]
    keep_special: bool,
    /// Do not put the BOS token before contexts when the tokenizer adds none by itself. By default it is
    /// prepended (as SAELens does) so that the attention sink, whose residual norm is ~100x the others,
    /// lands on BOS and stays out of the store.
    #[arg(long)]
    no_bos: bool,
    /// Leave out positions whose row norm at any requested hook exceeds this multiple of the batch's
    /// median norm there (attention sinks: ~100x; ordinary rows stay within ~3x). The same positions are
    /// left out of every hook's store. 0 keeps every row.
    #[arg(long, default_value_t = 10.0)]
    max_norm_ratio: f32,
    /// Rows per shard file.
    #[arg(long, default_value_t = 16384)]
    shard_rows: usize,
    /// Fraction of rows (the last ones) held out for evaluation.
    #[arg(long, default_value_t = 0.05)]
    eval_frac: f64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (resolved, model) = args.model.load()?;
    let mut tok = TextTokenizer::load(&resolved)
        .with_context(|| format!("cannot load the tokenizer of `{}`", args.model.model))?;
    if !args.no_bos {
        tok.prepend_bos();
    }
    let cfg = HarvestConfig {
        hooks: args.hooks.clone(),
        corpus: args.corpus.clone(),
        out: args.out.clone(),
        ctx_len: args.ctx_len,
        max_tokens: args.max_tokens,
        batch: args.batch,
        dtype: match args.dtype {
            DTypeArg::F32 => sae_store::DType::F32,
            DTypeArg::F16 => sae_store::DType::F16,
            DTypeArg::Bf16 => sae_store::DType::BF16,
        },
        keep_special: args.keep_special,
        shard_rows: args.shard_rows,
        eval_frac: args.eval_frac,
        max_norm_ratio: (args.max_norm_ratio > 0.0).then_some(args.max_norm_ratio),
    };
    let (len, unit) = match args.max_tokens {
        Some(n) => (n, "tokens"),
        None => (
            sae_harvest::Corpus::open(&cfg.corpus)
                .map(|c| c.bytes)
                .unwrap_or(0),
            "corpus bytes",
        ),
    };
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} [{elapsed_precise}, ETA {eta}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut on_progress = |p: &sae_harvest::HarvestProgress| {
        bar.set_position(if args.max_tokens.is_some() {
            p.rows
        } else {
            p.bytes.0
        });
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!(
            "{unit}; {} rows, {:.0} tokens/s",
            p.rows,
            p.tokens as f64 / secs
        ));
        ControlFlow::Continue(())
    };
    let mut warn = |w: String| bar.suspend(|| eprintln!("warning: {w}"));
    let summary = sae_harvest::harvest(&resolved, &model, &tok, &cfg, &mut on_progress, &mut warn)
        .with_context(|| {
            format!(
                "harvest of `{}` into {} failed",
                args.model.model,
                args.out.display()
            )
        })?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    if summary.resumed_rows > 0 {
        eprintln!("resumed after {} rows", summary.resumed_rows);
    }
    if summary.dropped > 0 {
        eprintln!(
            "left out {} positions whose norm exceeded {}x the batch median (attention sinks; --max-norm-ratio)",
            summary.dropped, args.max_norm_ratio
        );
    }
    eprintln!(
        "harvested {} rows per hook ({} tokens through the model in {:.1}s, {:.0} tokens/s)",
        summary.rows,
        summary.tokens,
        secs,
        summary.tokens as f64 / secs.max(1e-9)
    );
    for s in &summary.stores {
        println!("{}", s.display());
    }
    Ok(())
}
