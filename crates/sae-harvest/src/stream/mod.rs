//! Training rows straight from the model's forward pass, never written to disk. The harvest's batches
//! (pieces), in corpus order from a start position up to a row budget and then again from the start (epochs),
//! are run through the fast forward once for every hook; each consumer ([`StreamBatches`]: one hook, one
//! seed, batch and buffer size) mixes its hook's rows in a seeded buffer with the fill and draw rule of
//! `sae_store::ShuffledBatches`. A piece log records each piece's corpus position and row count, so a
//! resumed consumer replays its draws on row ids and re-runs the forward only for the pieces whose rows are
//! still buffered: it goes on exactly as if never interrupted.

mod feed;
mod log;
mod mixer;

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::thread::Scope;

use sae_lm::{Model, TextTokenizer};
use sae_store::ShuffleOptions;
use serde::Serialize;

use crate::contexts::Cursor;
use crate::corpus::Corpus;
use crate::error::{HarvestError, Result};
use feed::{Consumer, Feed};
use log::PieceLog;
use mixer::{Mixer, PieceMeta, Pieces};

pub use feed::StreamStats;

/// What to stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamConfig {
    /// Hook names; every hook's rows come from one forward pass per piece.
    pub hooks: Vec<String>,
    /// Tokens per context, special tokens included.
    pub ctx_len: usize,
    /// Contexts per forward pass (a piece holds up to `batch * ctx_len` tokens, as a harvest batch).
    pub batch: usize,
    /// Keep special-token positions.
    pub keep_special: bool,
    /// Leave out positions whose norm at any hook exceeds this multiple of the piece's median there.
    pub max_norm_ratio: Option<f32>,
    /// Where every epoch starts (e.g. the end of a held-out store harvested first).
    pub start: Cursor,
    /// Rows per epoch (None: up to the corpus end).
    pub epoch_rows: Option<u64>,
    /// The model, as the piece log records it (id and revision).
    pub model: String,
    /// The piece log file.
    #[serde(skip)]
    pub log: PathBuf,
}

/// A live stream: the forward pass shared by its consumers.
pub struct Stream<'scope, 'env> {
    feed: Rc<RefCell<Feed<'scope, 'env>>>,
}

impl<'scope, 'env> Stream<'scope, 'env> {
    /// Checks the settings and opens (or resumes) the piece log; the tokenizer thread runs in `scope`.
    pub fn open(
        scope: &'scope Scope<'scope, 'env>,
        model: &'env Model,
        tok: &'env TextTokenizer,
        corpus: &'env Corpus,
        cfg: StreamConfig,
    ) -> Result<Self> {
        if cfg.hooks.is_empty() || cfg.batch == 0 || cfg.ctx_len == 0 {
            return Err(HarvestError::Invalid(
                "a stream needs a hook, a batch and a context length".into(),
            ));
        }
        if let Some(max) = model.dims().max_ctx.filter(|&max| cfg.ctx_len > max) {
            return Err(HarvestError::Invalid(format!(
                "ctx_len {} is longer than the model's {max} positions",
                cfg.ctx_len
            )));
        }
        let hooks = cfg
            .hooks
            .iter()
            .map(|h| model.hook(h))
            .collect::<sae_lm::Result<Vec<_>>>()?;
        let settings = serde_json::json!({
            "stream": cfg,
            "corpus": corpus.file_names(),
            "tokenizer": tok.describe(),
        })
        .to_string();
        let log = PieceLog::open(&cfg.log, &settings)?;
        let feed = Feed::new(scope, model, tok, corpus, cfg, hooks, log);
        Ok(Stream {
            feed: Rc::new(RefCell::new(feed)),
        })
    }

    /// A consumer of `hook`'s rows mixed with `opts`.
    pub fn consumer(
        &self,
        hook: &str,
        opts: ShuffleOptions,
    ) -> Result<StreamBatches<'scope, 'env>> {
        let mut f = self.feed.borrow_mut();
        let wanted = f.model.hook(hook)?;
        let h =
            f.hooks.iter().position(|x| *x == wanted).ok_or_else(|| {
                HarvestError::Invalid(format!("the stream does not run hook {hook}"))
            })?;
        let d = f.model.width(wanted);
        f.consumers.push(Consumer {
            hook: h,
            next: 0,
            live: true,
        });
        Ok(StreamBatches {
            feed: self.feed.clone(),
            id: f.consumers.len() - 1,
            hook: h,
            d,
            mixer: Mixer::new(d, opts),
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> StreamStats {
        self.feed.borrow().stats
    }

    /// Warnings (skipped corpus files) heard since the last call.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut self.feed.borrow_mut().warnings)
    }
}

/// One consumer's endless stream of `[batch, d]` batches.
pub struct StreamBatches<'scope, 'env> {
    feed: Rc<RefCell<Feed<'scope, 'env>>>,
    id: usize,
    hook: usize,
    d: usize,
    mixer: Mixer,
}

/// The feed as one consumer's pieces.
struct View<'a, 'scope, 'env> {
    feed: &'a mut Feed<'scope, 'env>,
    id: usize,
    hook: usize,
}

impl Pieces for View<'_, '_, '_> {
    fn meta(&mut self, j: u64) -> Result<PieceMeta> {
        self.feed.meta(j)
    }

    fn rows(&mut self, j: u64) -> Result<Rc<Vec<f32>>> {
        self.feed.rows(j, self.hook)
    }

    fn passed(&mut self, j: u64) {
        self.feed.consumers[self.id].next = j;
        self.feed.evict();
    }
}

impl StreamBatches<'_, '_> {
    fn with<T>(&mut self, f: impl FnOnce(&mut Mixer, &mut dyn Pieces) -> T) -> T {
        let mut feed = self.feed.borrow_mut();
        let mut view = View {
            feed: &mut feed,
            id: self.id,
            hook: self.hook,
        };
        f(&mut self.mixer, &mut view)
    }

    /// Row width.
    pub fn d(&self) -> usize {
        self.d
    }

    /// Writes the next batch into `out` ([batch, d]).
    pub fn next_batch_into(&mut self, out: &mut [f32]) -> Result<()> {
        self.with(|m, p| m.next_batch_into(p, out))
    }

    /// Moves past the first `n` batches (see the module docs).
    pub fn skip_batches(&mut self, n: u64) -> Result<()> {
        self.feed.borrow_mut().refilling = true;
        let skipped = self.with(|m, p| m.skip(p, n));
        self.feed.borrow_mut().refilling = false;
        skipped
    }

    /// `rows` distinct rows of the buffer before the first batch, drawn with `seed` (the draws of the
    /// batches are unchanged).
    pub fn init_sample(&mut self, rows: usize, seed: u64) -> Result<Vec<f32>> {
        self.with(|m, p| m.sample(p, rows, seed))
    }

    /// Pieces this consumer has taken.
    pub fn pieces_taken(&self) -> u64 {
        self.mixer.taken()
    }

    /// Makes the piece log durable (before a checkpoint relies on it).
    pub fn persist(&mut self) -> Result<()> {
        self.feed.borrow_mut().log.sync()
    }
}

impl Drop for StreamBatches<'_, '_> {
    fn drop(&mut self) {
        if let Ok(mut f) = self.feed.try_borrow_mut() {
            f.consumers[self.id].live = false;
            f.evict();
        }
    }
}
