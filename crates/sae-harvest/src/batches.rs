//! Contexts grouped into forward batches by token count (short documents fill a batch instead of padding
//! it), tokenized on their own thread so the forward pass never waits for the tokenizer.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use crate::contexts::{Context, Contexts, Cursor};
use crate::corpus::Corpus;
use crate::error::Result;
use sae_lm::TextTokenizer;

/// One forward batch: contexts in corpus order, packed end to end (no padding).
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The contexts.
    pub contexts: Vec<Context>,
    /// Corpus bytes read once this batch was formed.
    pub bytes_done: u64,
}

impl Batch {
    /// Tokens in all contexts.
    pub fn tokens(&self) -> usize {
        self.contexts.iter().map(|c| c.ids.len()).sum()
    }
}

/// Groups contexts in order: each batch takes contexts while their tokens stay within `max_tokens` (at
/// least one context). The grouping is a function of the contexts from the start on, so a harvest resumed
/// at a batch boundary forms the same batches as one never interrupted.
pub struct Batcher<'a> {
    contexts: Contexts<'a>,
    max_tokens: usize,
    carry: Option<Context>,
}

impl<'a> Batcher<'a> {
    /// Batches of at most `max_tokens` tokens.
    pub fn new(contexts: Contexts<'a>, max_tokens: usize) -> Batcher<'a> {
        Batcher {
            contexts,
            max_tokens,
            carry: None,
        }
    }
}

impl Iterator for Batcher<'_> {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        let mut contexts = Vec::new();
        let mut tokens = 0;
        loop {
            let c = match self.carry.take().map(Ok).or_else(|| self.contexts.next()) {
                None => break,
                Some(Err(e)) => return Some(Err(e)),
                Some(Ok(c)) => c,
            };
            if !contexts.is_empty() && tokens + c.ids.len() > self.max_tokens {
                self.carry = Some(c);
                break;
            }
            tokens += c.ids.len();
            contexts.push(c);
        }
        if contexts.is_empty() {
            return None;
        }
        Some(Ok(Batch {
            contexts,
            bytes_done: self.contexts.bytes_done(),
        }))
    }
}

/// What the tokenizer thread sends.
pub(crate) enum Msg {
    Batch(Batch),
    Warn(String),
    Failed(crate::error::HarvestError),
}

/// Tokenizes on a scoped thread: batches of at most `max_tokens` tokens from `start` on, `ahead` of them
/// in flight. Dropping the receiver stops the thread.
pub(crate) fn spawn_batches<'scope, 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    corpus: &'env Corpus,
    tok: &'env TextTokenizer,
    ctx_len: usize,
    start: Cursor,
    max_tokens: usize,
) -> Receiver<Msg> {
    let (tx, rx): (SyncSender<Msg>, Receiver<Msg>) = sync_channel(2);
    scope.spawn(move || {
        let warn_tx = tx.clone();
        let mut warn = move |w: String| {
            let _ = warn_tx.send(Msg::Warn(w));
        };
        let contexts = match Contexts::new(corpus, tok, ctx_len, start, &mut warn) {
            Ok(c) => c,
            Err(e) => {
                let _ = tx.send(Msg::Failed(e));
                return;
            }
        };
        for b in Batcher::new(contexts, max_tokens) {
            let msg = match b {
                Ok(b) => Msg::Batch(b),
                Err(e) => Msg::Failed(e),
            };
            let failed = matches!(msg, Msg::Failed(_));
            if tx.send(msg).is_err() || failed {
                return;
            }
        }
    });
    rx
}
