//! The harvest loop: contexts packed into batches of about `batch * ctx_len` tokens, tokenized on one
//! thread, run through the model's fast forward on this one, and the rows at each requested hook appended
//! to one activation store per hook on a third; resumable from the stores' cursors with no duplicated or
//! missing rows.

use std::ops::ControlFlow;
use std::path::PathBuf;

use sae_store::DType;

use crate::batches::{spawn_batches, Msg};
use crate::contexts::Cursor;
use crate::corpus::Corpus;
use crate::error::{HarvestError, Result};
use crate::forward::forward_batch;
use crate::sinks::{cursor_of, open_sinks, spawn_writer, Job, Sink};
use sae_lm::{Hook, Model, ResolvedModel, TextTokenizer};

/// What to harvest and where.
#[derive(Debug, Clone, PartialEq)]
pub struct HarvestConfig {
    /// Hook names (`blocks.{i}.hook_resid_post`, ...); one store each.
    pub hooks: Vec<String>,
    /// Corpus files and folders.
    pub corpus: Vec<PathBuf>,
    /// Output folder; the store of hook H is `out/H/`.
    pub out: PathBuf,
    /// Tokens per context, special tokens included.
    pub ctx_len: usize,
    /// Stop after this many stored rows per hook (None: the whole corpus).
    pub max_tokens: Option<u64>,
    /// Contexts per forward pass: batches hold up to `batch * ctx_len` tokens of contexts packed end to
    /// end, so short documents fill a batch instead of padding it.
    pub batch: usize,
    /// On-disk element type of the stores.
    pub dtype: DType,
    /// Store special-token positions (BOS, [CLS], [SEP]) too.
    pub keep_special: bool,
    /// Rows per shard file.
    pub shard_rows: usize,
    /// Fraction of rows (the last ones) held out for evaluation.
    pub eval_frac: f64,
    /// Leave out positions where any hook's row norm exceeds this multiple of the batch's median norm
    /// at that hook (attention sinks, ~100x; ordinary rows stay within ~3x). `None` keeps every row.
    pub max_norm_ratio: Option<f32>,
}

/// Where a running harvest stands, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HarvestProgress {
    /// Rows stored per hook so far (including those of an earlier, resumed run).
    pub rows: u64,
    /// Tokens run through the model in this run.
    pub tokens: u64,
    /// Corpus bytes read so far, and in all.
    pub bytes: (u64, u64),
    /// The row budget, if any.
    pub max_tokens: Option<u64>,
}

/// How a harvest ended.
#[derive(Debug, Clone, PartialEq)]
pub struct HarvestSummary {
    /// Rows in each store.
    pub rows: u64,
    /// Rows already there when this run started (resumed).
    pub resumed_rows: u64,
    /// Tokens run through the model in this run.
    pub tokens: u64,
    /// Positions left out in this run as norm outliers (see `HarvestConfig::max_norm_ratio`).
    pub dropped: u64,
    /// The store folders, one per hook.
    pub stores: Vec<PathBuf>,
    /// False when the progress callback stopped the run early (stores left resumable).
    pub complete: bool,
}

/// Counters of a running harvest.
struct Run {
    emitted: u64,
    tokens: u64,
    dropped: u64,
    stopped: bool,
}

/// The forward loop: batches from the tokenizer thread through the model, jobs to the writer thread.
/// Ends at the row budget, the end of the corpus, a stop from `progress`, or a closed writer queue.
#[allow(clippy::too_many_arguments)]
fn forward_loop(
    m: &Model,
    cfg: &HarvestConfig,
    hooks: &[Hook],
    corpus_bytes: u64,
    batches: std::sync::mpsc::Receiver<Msg>,
    jobs: std::sync::mpsc::SyncSender<Job>,
    run: &mut Run,
    progress: &mut dyn FnMut(&HarvestProgress) -> ControlFlow<()>,
    warn: &mut dyn FnMut(String),
) -> Result<()> {
    let budget = cfg.max_tokens.unwrap_or(u64::MAX);
    while run.emitted < budget {
        let batch = match batches.recv() {
            Err(_) => break,
            Ok(Msg::Warn(w)) => {
                warn(w);
                continue;
            }
            Ok(Msg::Failed(e)) => return Err(e),
            Ok(Msg::Batch(b)) => b,
        };
        let Some(last) = batch.contexts.last() else {
            break;
        };
        let next = Cursor {
            doc: last.doc,
            window: last.window + 1,
            rows: 0,
        };
        let f = forward_batch(
            m,
            hooks,
            &batch,
            cfg.keep_special,
            budget - run.emitted,
            cfg.max_norm_ratio,
        )?;
        let (hosts, rows) = (f.hosts, f.rows);
        run.dropped += f.dropped;
        let n = rows.index.len() as u64;
        let cursor = serde_json::to_value(Cursor {
            rows: run.emitted + n,
            ..next
        })
        .map_err(|e| HarvestError::Invalid(e.to_string()))?;
        let job = Job {
            hosts,
            rows,
            emitted: run.emitted,
            cursor,
        };
        if jobs.send(job).is_err() {
            break; // the writer failed; joining it gives the error
        }
        run.emitted += n;
        run.tokens += batch.tokens() as u64;
        let p = HarvestProgress {
            rows: run.emitted,
            tokens: run.tokens,
            bytes: (batch.bytes_done, corpus_bytes),
            max_tokens: cfg.max_tokens,
        };
        if progress(&p).is_break() {
            run.stopped = true;
            break;
        }
    }
    Ok(())
}

/// Runs the model over the corpus and appends the activations at each hook to its store under `cfg.out`,
/// resuming stores an interrupted run left behind. `progress` may stop the run (stores stay resumable);
/// `warn` hears of skipped corpus files.
pub fn harvest(
    model: &ResolvedModel,
    m: &Model,
    tok: &TextTokenizer,
    cfg: &HarvestConfig,
    progress: &mut dyn FnMut(&HarvestProgress) -> ControlFlow<()>,
    warn: &mut dyn FnMut(String),
) -> Result<HarvestSummary> {
    if cfg.hooks.is_empty() {
        return Err(HarvestError::Invalid("give at least one --hook".into()));
    }
    if cfg.batch == 0 || cfg.ctx_len == 0 {
        return Err(HarvestError::Invalid(
            "--batch and --ctx-len must be positive".into(),
        ));
    }
    if let Some(max) = m.dims().max_ctx.filter(|&max| cfg.ctx_len > max) {
        return Err(HarvestError::Invalid(format!(
            "--ctx-len {} is longer than the model's {max} positions",
            cfg.ctx_len
        )));
    }
    for name in &cfg.hooks {
        m.hook(name)?;
    }
    let corpus = Corpus::open(&cfg.corpus)?;
    let empty = || HarvestError::EmptyCorpus {
        paths: cfg
            .corpus
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    {
        let mut quiet = |_: String| {};
        if corpus
            .documents(0, &mut quiet)
            .next()
            .transpose()?
            .is_none()
        {
            return Err(empty());
        }
    }
    // One writer per output folder: a second harvest into it is refused (a dead one's lock is taken over).
    let _lock = sae_store::OutputLock::acquire(&cfg.out, "sae harvest")?;
    let mut done = Vec::new();
    let sinks = open_sinks(model, m, tok, &corpus, cfg, &mut done)?;
    if sinks.is_empty() {
        let rows = done.iter().map(|(_, r)| *r).min().unwrap_or(0);
        let stores = done.into_iter().map(|(d, _)| d).collect();
        return Ok(HarvestSummary {
            rows,
            resumed_rows: rows,
            tokens: 0,
            dropped: 0,
            stores,
            complete: true,
        });
    }
    if let Some((dir, _)) = done.first() {
        return Err(HarvestError::Invalid(format!(
            "{} is complete but the other hooks' stores are not; harvest the missing hooks into another --out",
            dir.display()
        )));
    }
    // Start where the store that is furthest behind stopped; stores ahead skip rows they already hold.
    let mut start = Cursor::default();
    let mut first = true;
    for s in &sinks {
        let c = cursor_of(&s.writer)?;
        if first || c.rows < start.rows {
            start = c;
        }
        first = false;
    }
    let resumed_rows = start.rows;
    let hooks: Vec<Hook> = sinks.iter().map(|s| s.hook).collect();
    let stores: Vec<PathBuf> = sinks.iter().map(|s| s.dir.clone()).collect();
    let created: Vec<bool> = sinks.iter().map(|s| s.created).collect();
    let mut run = Run {
        emitted: start.rows,
        tokens: 0,
        dropped: 0,
        stopped: false,
    };
    let max_tokens = cfg.batch.saturating_mul(cfg.ctx_len);
    let (looped, written) = std::thread::scope(|scope| {
        let batches = spawn_batches(scope, &corpus, tok, cfg.ctx_len, start, max_tokens);
        let (jobs, writer) = spawn_writer(scope, sinks);
        let looped = forward_loop(
            m,
            cfg,
            &hooks,
            corpus.bytes,
            batches,
            jobs,
            &mut run,
            progress,
            warn,
        );
        let written = writer.join().unwrap_or_else(|_| {
            Err(HarvestError::Invalid(
                "the store writer thread panicked".into(),
            ))
        });
        (looped, written)
    });
    let sinks: Vec<Sink> = written?;
    looped?;
    let (emitted, tokens, dropped) = (run.emitted, run.tokens, run.dropped);
    if run.stopped {
        return Ok(HarvestSummary {
            rows: emitted,
            resumed_rows,
            tokens,
            dropped,
            stores,
            complete: false,
        });
    }
    if emitted == 0 {
        for (dir, created) in stores.iter().zip(&created) {
            if *created {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        return Err(empty());
    }
    let eval_rows = ((emitted as f64) * cfg.eval_frac.clamp(0.0, 1.0)).round() as u64;
    for s in sinks {
        s.writer.finish(eval_rows)?;
    }
    Ok(HarvestSummary {
        rows: emitted,
        resumed_rows,
        tokens,
        dropped,
        stores,
        complete: true,
    })
}
