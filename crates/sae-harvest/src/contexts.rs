//! Documents into model contexts: each document is tokenized and cut into windows of at most ctx_len tokens
//! (with the model's special tokens around each), never spanning two documents; resumable at any window.

use serde::{Deserialize, Serialize};

use crate::corpus::{Corpus, Documents};
use crate::error::{HarvestError, Result};
use sae_lm::TextTokenizer;

/// Where a harvest stands: the next context to run and how many rows came before it. Stored as the store
/// writer's cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Cursor {
    /// Document id of the next context.
    pub doc: u32,
    /// Window index of the next context within its document.
    pub window: u32,
    /// Rows emitted before that context.
    pub rows: u64,
}

/// One model input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// Document id.
    pub doc: u32,
    /// Window index within the document.
    pub window: u32,
    /// Token ids, special tokens included.
    pub ids: Vec<u32>,
    /// Which positions are special (model-added or special-token ids).
    pub special: Vec<bool>,
}

/// Produces contexts in a fixed order from a starting cursor.
pub struct Contexts<'a> {
    docs: Documents<'a>,
    tok: &'a TextTokenizer,
    body: usize,
    start: Cursor,
    pending: std::vec::IntoIter<Context>,
}

impl<'a> Contexts<'a> {
    /// Contexts of at most `ctx_len` tokens from `start` on. Errors if ctx_len leaves no room for text.
    pub fn new(
        corpus: &'a Corpus,
        tok: &'a TextTokenizer,
        ctx_len: usize,
        start: Cursor,
        warn: &'a mut dyn FnMut(String),
    ) -> Result<Contexts<'a>> {
        let specials = tok.prefix().len() + tok.suffix().len();
        if ctx_len <= specials {
            return Err(HarvestError::Invalid(format!(
                "--ctx-len {ctx_len} leaves no room for text next to the model's {specials} special token(s)"
            )));
        }
        Ok(Contexts {
            docs: corpus.documents(start.doc, warn),
            tok,
            body: ctx_len - specials,
            start,
            pending: Vec::new().into_iter(),
        })
    }

    /// Bytes of corpus read so far.
    pub fn bytes_done(&self) -> u64 {
        self.docs.bytes_done()
    }

    fn windows(&self, doc: u32, tokens: &[u32]) -> Vec<Context> {
        let (pre, suf) = (self.tok.prefix(), self.tok.suffix());
        tokens
            .chunks(self.body)
            .enumerate()
            .map(|(w, chunk)| {
                let ids: Vec<u32> = pre.iter().chain(chunk).chain(suf).copied().collect();
                let special = (0..ids.len())
                    .map(|i| {
                        i < pre.len() || i >= pre.len() + chunk.len() || self.tok.is_special(ids[i])
                    })
                    .collect();
                Context {
                    doc,
                    window: w as u32,
                    ids,
                    special,
                }
            })
            .filter(|c| !(c.doc == self.start.doc && c.window < self.start.window))
            .collect()
    }
}

impl Iterator for Contexts<'_> {
    type Item = Result<Context>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(c) = self.pending.next() {
                return Some(Ok(c));
            }
            let doc = match self.docs.next()? {
                Ok(d) => d,
                Err(e) => return Some(Err(e)),
            };
            let tokens = match self.tok.encode(&doc.text) {
                Ok(t) => t,
                Err(e) => return Some(Err(e.into())),
            };
            self.pending = self.windows(doc.id, &tokens).into_iter();
        }
    }
}
