//! One store per hook: created or resumed with a check that the settings match, and written on their own
//! thread so the forward pass never waits for shard encoding or fsync.

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::{Scope, ScopedJoinHandle};

use sae_store::{HarvestSource, Manifest, RowBatch, Source, StoreSpec, StoreWriter};

use crate::contexts::Cursor;
use crate::corpus::Corpus;
use crate::error::{HarvestError, Result};
use crate::harvest::HarvestConfig;
use crate::rows::Rows;
use sae_lm::{Hook, Model, ResolvedModel, TextTokenizer};

pub(crate) struct Sink {
    pub hook: Hook,
    pub dir: PathBuf,
    pub writer: StoreWriter,
    /// Rows this store holds or has buffered (global row index of its next row).
    pub pushed: u64,
    pub created: bool,
}

/// Opens (creates or resumes) the store of each hook; complete stores go to `done` with their row counts.
pub(crate) fn open_sinks(
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

pub(crate) fn cursor_of(w: &StoreWriter) -> Result<Cursor> {
    match w.cursor() {
        None => Ok(Cursor::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            HarvestError::Invalid(format!("the store's cursor is not a harvest cursor: {e}"))
        }),
    }
}

/// The rows of one batch for every store: each hook's packed activations [tokens, width] (in the order
/// of the stores), the rows to keep, how many rows came before, and the cursor after the batch.
pub(crate) struct Job {
    pub hosts: Vec<(Vec<f32>, usize)>,
    pub rows: Rows,
    pub emitted: u64,
    pub cursor: serde_json::Value,
}

fn write(sinks: &mut [Sink], job: &Job) -> Result<()> {
    let rows = &job.rows;
    let n = rows.index.len() as u64;
    for (s, (host, w)) in sinks.iter_mut().zip(&job.hosts) {
        let w = *w;
        // Stores ahead of the others (an earlier run wrote them further) skip rows they already hold.
        let skip = s.pushed.saturating_sub(job.emitted).min(n) as usize;
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
        s.writer.push(batch, Some(job.cursor.clone()))?;
        s.pushed += keep.len() as u64;
    }
    Ok(())
}

/// Moves the stores to a writer thread that appends each job's rows; joining it gives them back (or the
/// first write error). Up to two jobs wait in the queue.
pub(crate) fn spawn_writer<'scope>(
    scope: &'scope Scope<'scope, '_>,
    mut sinks: Vec<Sink>,
) -> (SyncSender<Job>, ScopedJoinHandle<'scope, Result<Vec<Sink>>>) {
    let (tx, rx) = sync_channel::<Job>(2);
    let handle = scope.spawn(move || {
        for job in rx {
            write(&mut sinks, &job)?;
        }
        Ok(sinks)
    });
    (tx, handle)
}
