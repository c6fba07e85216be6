//! The harvest loop: contexts batched through the model, rows at each requested hook appended to one
//! activation store per hook, resumable from the stores' cursors with no duplicated or missing rows.

use std::ops::ControlFlow;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use sae_store::{DType, HarvestSource, Manifest, RowBatch, Source, StoreSpec, StoreWriter};

use crate::contexts::{Context, Contexts, Cursor};
use crate::corpus::Corpus;
use crate::error::{HarvestError, Result};
use crate::hooks::{Capture, Hook};
use crate::hub::ResolvedModel;
use crate::models::Model;
use crate::tokenizer::TextTokenizer;

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
    /// Contexts per forward pass.
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

struct Sink {
    hook: Hook,
    dir: PathBuf,
    writer: StoreWriter,
    /// Rows this store holds or has buffered (global row index of its next row).
    pushed: u64,
    created: bool,
}

/// Rows of one batch: for each kept position, (row in the flattened [b * t] batch, token, doc, position).
struct Rows {
    index: Vec<usize>,
    token_ids: Vec<u32>,
    doc_ids: Vec<u32>,
    positions: Vec<u32>,
}

fn select_rows(batch: &[Context], t: usize, keep_special: bool, budget: u64) -> Rows {
    let mut rows = Rows {
        index: Vec::new(),
        token_ids: Vec::new(),
        doc_ids: Vec::new(),
        positions: Vec::new(),
    };
    'outer: for (b, c) in batch.iter().enumerate() {
        for (p, (&id, &special)) in c.ids.iter().zip(&c.special).enumerate() {
            if rows.index.len() as u64 >= budget {
                break 'outer;
            }
            if special && !keep_special {
                continue;
            }
            rows.index.push(b * t + p);
            rows.token_ids.push(id);
            rows.doc_ids.push(c.doc);
            rows.positions.push(p as u32);
        }
    }
    rows
}

/// Keeps the rows whose norm stays within `ratio` x the median row norm of the batch at every hook.
/// `hosts[h]` is hook h's activations [b * t, width]. The same rows are kept for every hook, so the
/// stores of one harvest stay row-aligned. Returns the rows kept and how many were left out.
fn drop_outliers(rows: Rows, hosts: &[(Vec<f32>, usize)], ratio: Option<f32>) -> (Rows, u64) {
    let Some(ratio) = ratio.filter(|r| *r > 0.0) else {
        return (rows, 0);
    };
    let mut keep = vec![true; rows.index.len()];
    for (host, w) in hosts {
        let norms: Vec<f32> = rows
            .index
            .iter()
            .map(|&r| {
                host[r * w..(r + 1) * w]
                    .iter()
                    .map(|v| v * v)
                    .sum::<f32>()
                    .sqrt()
            })
            .collect();
        let mut sorted = norms.clone();
        sorted.sort_by(f32::total_cmp);
        let Some(&median) = sorted.get(sorted.len() / 2) else {
            continue;
        };
        for (k, n) in keep.iter_mut().zip(&norms) {
            *k &= *n <= ratio * median;
        }
    }
    let dropped = keep.iter().filter(|k| !**k).count() as u64;
    let pick = |v: &[u32]| -> Vec<u32> {
        v.iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(x, _)| *x)
            .collect()
    };
    let kept = Rows {
        index: rows
            .index
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(x, _)| *x)
            .collect(),
        token_ids: pick(&rows.token_ids),
        doc_ids: pick(&rows.doc_ids),
        positions: pick(&rows.positions),
    };
    (kept, dropped)
}

/// Opens (creates or resumes) the store of each hook; complete stores go to `done` with their row counts.
fn open_sinks(
    model: &ResolvedModel,
    m: &Model,
    tok: &TextTokenizer,
    corpus: &Corpus,
    cfg: &HarvestConfig,
    done: &mut Vec<(PathBuf, u64)>,
) -> Result<Vec<Sink>> {
    let mut sinks = Vec::new();
    for name in &cfg.hooks {
        let hook = m.hook(name)?;
        if sinks.iter().any(|s: &Sink| s.hook == hook)
            || done.iter().any(|(d, _)| d.ends_with(hook.name()))
        {
            continue;
        }
        let source = Source::Harvest(HarvestSource {
            model_id: model.id.clone(),
            revision: model.revision.clone(),
            hook: hook.name(),
            ctx_len: cfg.ctx_len,
            corpus: corpus.file_names(),
            tokenizer: tok.describe().to_string(),
            keep_special: cfg.keep_special,
            dtype: "f32".into(),
            max_norm_ratio: cfg.max_norm_ratio,
        });
        let dir = cfg.out.join(hook.name());
        let (writer, created) = if dir.join(sae_store::MANIFEST_FILE).exists() {
            let m = Manifest::read(&dir)?;
            if m.source != source || m.dtype != cfg.dtype {
                return Err(HarvestError::Invalid(format!(
                    "{} holds a harvest with other settings (model, revision, hook, ctx len, corpus, tokenizer, \
                     special tokens or dtype); resume with the same arguments or choose another --out",
                    dir.display()
                )));
            }
            if m.complete {
                done.push((dir, m.rows));
                continue;
            }
            (StoreWriter::resume(&dir, cfg.shard_rows)?, false)
        } else {
            let spec = StoreSpec {
                d: m.width(hook),
                dtype: cfg.dtype,
                shard_rows: cfg.shard_rows,
                source,
                with_token_ids: true,
                with_doc_ids: true,
                with_positions: true,
            };
            (StoreWriter::create(&dir, spec)?, true)
        };
        let pushed = writer.rows();
        sinks.push(Sink {
            hook,
            dir,
            writer,
            pushed,
            created,
        });
    }
    Ok(sinks)
}

fn cursor_of(w: &StoreWriter) -> Result<Cursor> {
    match w.cursor() {
        None => Ok(Cursor::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            HarvestError::Invalid(format!("the store's cursor is not a harvest cursor: {e}"))
        }),
    }
}

/// Right-pads a batch of contexts. -> ids [b, t], real lengths
fn pad(batch: &[Context], pad_id: u32, device: &Device) -> Result<(Tensor, Vec<usize>, usize)> {
    let t = batch.iter().map(|c| c.ids.len()).max().unwrap_or(0);
    let ids: Vec<u32> = batch
        .iter()
        .flat_map(|c| {
            c.ids
                .iter()
                .copied()
                .chain(std::iter::repeat_n(pad_id, t - c.ids.len()))
        })
        .collect();
    let lengths = batch.iter().map(|c| c.ids.len()).collect();
    Ok((Tensor::from_vec(ids, (batch.len(), t), device)?, lengths, t))
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
    let mut done = Vec::new();
    let mut sinks = open_sinks(model, m, tok, &corpus, cfg, &mut done)?;
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
    let device = Device::Cpu;
    let mut contexts = Contexts::new(&corpus, tok, cfg.ctx_len, start, warn)?;
    let mut emitted = start.rows;
    let mut tokens = 0u64;
    let mut dropped = 0u64;
    let budget = cfg.max_tokens.unwrap_or(u64::MAX);
    let mut stopped = false;
    while emitted < budget {
        let batch: Vec<Context> = contexts.by_ref().take(cfg.batch).collect::<Result<_>>()?;
        let Some(last) = batch.last() else { break };
        let next = Cursor {
            doc: last.doc,
            window: last.window + 1,
            rows: 0,
        };
        let (ids, lengths, t) = pad(&batch, tok.pad_id(), &device)?;
        let rows = select_rows(&batch, t, cfg.keep_special, budget - emitted);
        let mut cap = Capture::new(&hooks);
        m.forward(&ids, &lengths, &mut cap)?;
        // One host copy per hook and batch.
        let mut hosts = Vec::with_capacity(sinks.len());
        for (s, act) in sinks.iter().zip(cap.take()) {
            let act = act.ok_or_else(|| {
                HarvestError::Invalid(format!("the model did not offer {}", s.hook))
            })?;
            hosts.push((act.flatten_all()?.to_vec1::<f32>()?, act.dim(2)?));
        }
        let (rows, left_out) = drop_outliers(rows, &hosts, cfg.max_norm_ratio);
        dropped += left_out;
        let n = rows.index.len() as u64;
        let cursor = serde_json::to_value(Cursor {
            rows: emitted + n,
            ..next
        })
        .map_err(|e| HarvestError::Invalid(e.to_string()))?;
        for (s, (host, w)) in sinks.iter_mut().zip(&hosts) {
            let w = *w;
            let skip = s.pushed.saturating_sub(emitted).min(n) as usize;
            let keep = &rows.index[skip..];
            let mut acts = Vec::with_capacity(keep.len() * w);
            for &r in keep {
                acts.extend_from_slice(&host[r * w..(r + 1) * w]);
            }
            let batch = RowBatch {
                acts: &acts,
                token_ids: Some(&rows.token_ids[skip..]),
                doc_ids: Some(&rows.doc_ids[skip..]),
                positions: Some(&rows.positions[skip..]),
            };
            s.writer.push(batch, Some(cursor.clone()))?;
            s.pushed += keep.len() as u64;
        }
        emitted += n;
        tokens += lengths.iter().sum::<usize>() as u64;
        let p = HarvestProgress {
            rows: emitted,
            tokens,
            bytes: (contexts.bytes_done(), corpus.bytes),
            max_tokens: cfg.max_tokens,
        };
        if progress(&p).is_break() {
            stopped = true;
            break;
        }
    }
    let stores = sinks.iter().map(|s| s.dir.clone()).collect();
    if stopped {
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
        for s in &sinks {
            if s.created {
                let _ = std::fs::remove_dir_all(&s.dir);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> Rows {
        Rows {
            index: (0..n).collect(),
            token_ids: (0..n as u32).collect(),
            doc_ids: vec![0; n],
            positions: (0..n as u32).collect(),
        }
    }

    #[test]
    fn outliers_at_any_hook_leave_every_store() {
        // Hook A (width 2): row 1 has norm 100 against a median of ~1. Hook B (width 1): row 3 has 50.
        let a = vec![1.0, 0.0, 60.0, 80.0, 0.0, 1.2, 0.9, 0.0, 1.0, 1.0];
        let b = vec![2.0, 2.5, 1.5, 100.0, 2.0];
        let (kept, dropped) = drop_outliers(rows(5), &[(a.clone(), 2), (b.clone(), 1)], Some(10.0));
        assert_eq!(dropped, 2);
        assert_eq!(kept.index, vec![0, 2, 4]);
        assert_eq!(kept.token_ids, vec![0, 2, 4]);
        assert_eq!(kept.positions, vec![0, 2, 4]);
        // A looser ratio keeps hook B's row 3 (50x) but not hook A's row 1 (~100x).
        let (kept, _) = drop_outliers(rows(5), &[(a.clone(), 2), (b.clone(), 1)], Some(60.0));
        assert_eq!(kept.index, vec![0, 2, 3, 4]);
        // No ratio: everything kept.
        let (kept, dropped) = drop_outliers(rows(5), &[(a, 2), (b, 1)], None);
        assert_eq!((kept.index.len(), dropped), (5, 0));
    }
}
