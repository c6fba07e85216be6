//! The forward pass behind a live stream: pieces (harvest batches, in corpus order, epoch after epoch from
//! the stream's start) made on demand by the fast forward, each hook's rows kept until every consumer of
//! that hook has taken them. Pieces come from a tokenizer thread in order; a piece asked for out of order
//! (a resumed consumer's buffered rows) is re-run alone from its logged corpus position and must give the
//! rows the log records.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::mpsc::Receiver;
use std::thread::Scope;

use sae_lm::{Hook, Model, TextTokenizer};

use super::log::{PieceInfo, PieceLog};
use super::mixer::PieceMeta;
use super::StreamConfig;
use crate::batches::{spawn_batches, Batch, Batcher, Msg};
use crate::contexts::{Contexts, Cursor};
use crate::corpus::Corpus;
use crate::error::{HarvestError, Result};
use crate::forward::forward_batch;

/// A piece's rows per hook (None once no consumer of that hook needs them).
struct Cached {
    meta: PieceMeta,
    hooks: Vec<Option<Rc<Vec<f32>>>>,
}

/// One consumer: the hook it reads and the first piece it still needs.
pub(crate) struct Consumer {
    pub hook: usize,
    pub next: u64,
    pub live: bool,
}

/// The in-order producer: the piece it makes next, where that piece starts, the tokenizer's batches.
struct Sequential {
    j: u64,
    cursor: Cursor,
    rx: Receiver<Msg>,
    peeked: Option<Batch>,
}

/// Counters of a stream (for progress and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Pieces run through the model, re-runs included.
    pub forwards: u64,
    /// Of those, pieces run again to refill the buffers of resumed consumers (their rows were drawn
    /// from before the interruption).
    pub refills: u64,
    /// Tokens run through the model.
    pub tokens: u64,
}

pub(crate) struct Feed<'scope, 'env> {
    pub scope: &'scope Scope<'scope, 'env>,
    pub model: &'env Model,
    pub tok: &'env TextTokenizer,
    pub corpus: &'env Corpus,
    pub cfg: StreamConfig,
    pub hooks: Vec<Hook>,
    pub log: PieceLog,
    seq: Option<Sequential>,
    cache: BTreeMap<u64, Cached>,
    pub consumers: Vec<Consumer>,
    pub warnings: Vec<String>,
    pub stats: StreamStats,
    /// A consumer is refilling its buffer after a resume (its forwards count as refills).
    pub refilling: bool,
}

impl<'scope, 'env> Feed<'scope, 'env> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        scope: &'scope Scope<'scope, 'env>,
        model: &'env Model,
        tok: &'env TextTokenizer,
        corpus: &'env Corpus,
        cfg: StreamConfig,
        hooks: Vec<Hook>,
        log: PieceLog,
    ) -> Self {
        Feed {
            scope,
            model,
            tok,
            corpus,
            cfg,
            hooks,
            log,
            seq: None,
            cache: BTreeMap::new(),
            consumers: Vec::new(),
            warnings: Vec::new(),
            stats: StreamStats::default(),
            refilling: false,
        }
    }

    /// What the log knows of piece `j` (later epochs repeat the first).
    fn info(&self, j: u64) -> Option<PieceInfo> {
        let known = self.log.pieces.len() as u64;
        let j = match self.log.epoch_len() {
            Some(p) => j % p,
            None => j,
        };
        (j < known).then(|| self.log.pieces[j as usize])
    }

    /// Where piece `j` starts, when the log says.
    fn start_of(&self, j: u64) -> Option<Cursor> {
        if j == 0 {
            return Some(self.cfg.start);
        }
        self.info(j - 1).map(|p| match p.last {
            true => self.cfg.start,
            false => p.next,
        })
    }

    /// Piece `j`'s size (made if nothing made or logged it yet).
    pub fn meta(&mut self, j: u64) -> Result<PieceMeta> {
        if let Some(p) = self.info(j) {
            return Ok(PieceMeta {
                rows: p.rows as usize,
                last: p.last,
            });
        }
        self.ensure(j)?;
        Ok(self.cache[&j].meta)
    }

    /// Hook `h`'s rows of piece `j` (the piece is made again if they were let go).
    pub fn rows(&mut self, j: u64, h: usize) -> Result<Rc<Vec<f32>>> {
        if self.cache.get(&j).is_some_and(|c| c.hooks[h].is_none()) {
            self.cache.remove(&j);
        }
        self.ensure(j)?;
        self.cache[&j].hooks[h].clone().ok_or_else(|| {
            HarvestError::Invalid(format!("no consumer of hook {h} asked for piece {j}"))
        })
    }

    /// Makes piece `j` if it is not cached: in order when the producer is at it, or when the log knows
    /// where it starts and the producer is behind it (restarted there); a piece behind the producer is
    /// re-run alone.
    fn ensure(&mut self, j: u64) -> Result<()> {
        while !self.cache.contains_key(&j) {
            let at = self.seq.as_ref().map(|s| s.j);
            match (at, self.info(j)) {
                (Some(a), _) if a == j => self.produce()?,
                (Some(a), Some(info)) if a > j => self.rerun(j, info)?,
                (_, Some(_)) => {
                    self.start_at(j)?;
                    self.produce()?;
                }
                (None, None) => {
                    self.start_at(self.log.pieces.len() as u64)?;
                    self.produce()?;
                }
                (Some(_), None) => self.produce()?,
            }
        }
        Ok(())
    }

    /// Drops every hook's rows that no live consumer still needs.
    pub fn evict(&mut self) {
        let consumers = &self.consumers;
        let needed = |j: u64, h: usize| {
            consumers
                .iter()
                .any(|c| c.live && c.hook == h && c.next <= j)
        };
        self.cache.retain(|&j, c| {
            for (h, rows) in c.hooks.iter_mut().enumerate() {
                if rows.is_some() && !needed(j, h) {
                    *rows = None;
                }
            }
            c.hooks.iter().any(Option::is_some)
        });
    }

    /// The rows of one batch as a cached piece; `budget` rows at most.
    fn forward(&mut self, j: u64, batch: &Batch, budget: u64) -> Result<u32> {
        let f = forward_batch(
            self.model,
            &self.hooks,
            batch,
            self.cfg.keep_special,
            budget,
            self.cfg.max_norm_ratio,
        )?;
        self.stats.forwards += 1;
        self.stats.refills += u64::from(self.refilling);
        self.stats.tokens += batch.tokens() as u64;
        let wanted = |h: usize| self.consumers.iter().any(|c| c.live && c.hook == h);
        let hooks = (0..self.hooks.len())
            .map(|h| wanted(h).then(|| Rc::new(f.acts(h))))
            .collect();
        let rows = f.rows.index.len();
        let meta = PieceMeta { rows, last: false };
        self.cache.insert(j, Cached { meta, hooks });
        Ok(rows as u32)
    }

    fn budget_after(&self, cursor: Cursor) -> u64 {
        self.cfg
            .epoch_rows
            .map_or(u64::MAX, |b| b.saturating_sub(cursor.rows))
    }

    /// Re-runs piece `j` alone from its logged start; it must give the logged rows.
    fn rerun(&mut self, j: u64, info: PieceInfo) -> Result<()> {
        let mut quiet = |_: String| {};
        let max = self.cfg.batch.saturating_mul(self.cfg.ctx_len);
        let contexts = Contexts::new(
            self.corpus,
            self.tok,
            self.cfg.ctx_len,
            info.cursor,
            &mut quiet,
        )?;
        let batch = Batcher::new(contexts, max).next().transpose()?;
        let batch = batch.ok_or_else(|| changed(j, "the corpus ends before it"))?;
        let rows = self.forward(j, &batch, self.budget_after(info.cursor))?;
        if rows != info.rows {
            let what = format!(
                "the forward pass gives {rows} rows where the log says {}",
                info.rows
            );
            return Err(changed(j, &what));
        }
        self.cache.get_mut(&j).expect("just made").meta.last = info.last;
        Ok(())
    }

    /// The next batch of the tokenizer thread (None at the corpus end).
    fn recv(&mut self) -> Result<Option<Batch>> {
        let seq = self.seq.as_mut().expect("a running producer");
        if let Some(b) = seq.peeked.take() {
            return Ok(Some(b));
        }
        loop {
            match seq.rx.recv() {
                Err(_) => return Ok(None),
                Ok(Msg::Warn(w)) => self.warnings.push(w),
                Ok(Msg::Failed(e)) => return Err(e),
                Ok(Msg::Batch(b)) => return Ok(Some(b)),
            }
        }
    }

    /// Starts the in-order producer at piece `j`.
    fn start_at(&mut self, j: u64) -> Result<()> {
        let cursor = self.start_of(j).ok_or_else(|| {
            HarvestError::Invalid(format!("stream piece {j} lies beyond the stream log"))
        })?;
        let max = self.cfg.batch.saturating_mul(self.cfg.ctx_len);
        let rx = spawn_batches(
            self.scope,
            self.corpus,
            self.tok,
            self.cfg.ctx_len,
            cursor,
            max,
        );
        self.seq = Some(Sequential {
            j,
            cursor,
            rx,
            peeked: None,
        });
        Ok(())
    }

    /// Makes the in-order producer's next piece, logging it the first time the stream reaches it.
    fn produce(&mut self) -> Result<()> {
        let (j, cursor) = self.seq.as_ref().map(|s| (s.j, s.cursor)).expect("started");
        let Some(batch) = self.recv()? else {
            return Err(HarvestError::Invalid(
                "the stream's corpus gives no rows: nothing is left after the held-out part".into(),
            ));
        };
        let budget = self.budget_after(cursor);
        let rows = self.forward(j, &batch, budget)?;
        let end = batch.contexts.last().expect("a batch holds a context");
        let next = Cursor {
            doc: end.doc,
            window: end.window + 1,
            rows: cursor.rows + rows as u64,
        };
        let last = rows as u64 >= budget || {
            let peek = self.recv()?;
            let end = peek.is_none();
            self.seq.as_mut().expect("started").peeked = peek;
            end
        };
        let info = PieceInfo {
            cursor,
            next,
            rows,
            last,
        };
        match self.info(j) {
            Some(known) if known != info => {
                return Err(changed(j, "it gives other rows than logged"))
            }
            Some(_) => {}
            None => self.log.push(info)?,
        }
        self.cache.get_mut(&j).expect("just made").meta.last = last;
        match last {
            true => self.start_at(j + 1)?,
            false => {
                let s = self.seq.as_mut().expect("started");
                (s.j, s.cursor) = (j + 1, next);
            }
        }
        self.evict();
        Ok(())
    }
}

fn changed(j: u64, what: &str) -> HarvestError {
    HarvestError::Invalid(format!(
        "stream piece {j}: {what}; the model or the corpus changed since the checkpoint"
    ))
}
