//! A spliced evaluation over a corpus: contexts as the harvest cuts them, batched by tokens.

use std::ops::ControlFlow;

use sae_harvest::{Batcher, Contexts, Corpus, Cursor};
use sae_lm::{Hook, Model, TextTokenizer};
use sae_model::Sae;

use crate::error::{Result, SpliceError};
use crate::loss::LossSums;
use crate::splice::score_batch;

/// What to evaluate on.
#[derive(Debug, Clone, PartialEq)]
pub struct SplicedConfig {
    /// The hook the SAE replaces.
    pub hook: Hook,
    /// Tokens per context, special tokens included.
    pub ctx_len: usize,
    /// Tokens per forward batch (contexts packed end to end).
    pub batch_tokens: usize,
    /// Stop once this many positions are scored (None: the whole corpus).
    pub max_tokens: Option<u64>,
}

/// Where a running evaluation stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplicedProgress {
    /// Positions scored so far.
    pub positions: u64,
    /// Corpus bytes read so far, and in all.
    pub bytes: (u64, u64),
}

/// Splices `sae` into `model` at `cfg.hook` over the corpus; `progress` may stop early (the sums so
/// far are returned), `warn` hears of skipped corpus files.
pub fn spliced_eval(
    model: &Model,
    tok: &TextTokenizer,
    corpus: &Corpus,
    sae: &Sae,
    cfg: &SplicedConfig,
    progress: &mut dyn FnMut(&SplicedProgress) -> ControlFlow<()>,
    warn: &mut dyn FnMut(String),
) -> Result<LossSums> {
    if !model.is_causal() {
        return Err(SpliceError::Invalid(format!(
            "spliced evaluation needs a causal language model; this {} model predicts no next token",
            model.arch()
        )));
    }
    let width = model.width(cfg.hook);
    if sae.d_in() != width {
        return Err(SpliceError::Invalid(format!(
            "the SAE reads {} values per row but {} has width {width}",
            sae.d_in(),
            cfg.hook
        )));
    }
    let contexts = Contexts::new(corpus, tok, cfg.ctx_len, Cursor::default(), warn)?;
    let mut sums = LossSums::default();
    let budget = cfg.max_tokens.unwrap_or(u64::MAX);
    for batch in Batcher::new(contexts, cfg.batch_tokens.max(cfg.ctx_len)) {
        let batch = batch?;
        let seqs: Vec<&[u32]> = batch.contexts.iter().map(|c| c.ids.as_slice()).collect();
        let special: Vec<&[bool]> = batch
            .contexts
            .iter()
            .map(|c| c.special.as_slice())
            .collect();
        sums.add(&score_batch(model, &seqs, &special, cfg.hook, sae)?);
        let p = SplicedProgress {
            positions: sums.positions,
            bytes: (batch.bytes_done, corpus.bytes),
        };
        if sums.positions >= budget || progress(&p).is_break() {
            break;
        }
    }
    if sums.positions == 0 {
        return Err(SpliceError::Invalid(
            "the corpus gave no position to score (every context shorter than two text tokens)"
                .into(),
        ));
    }
    Ok(sums)
}
