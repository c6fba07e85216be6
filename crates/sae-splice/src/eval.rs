//! A spliced evaluation over a corpus: contexts as the harvest cuts them, batched by tokens.

use std::ops::ControlFlow;

use sae_harvest::{Batcher, Context, Contexts, Corpus, Cursor};
use sae_lm::{Model, TextTokenizer};
use sae_model::Sae;

use crate::error::{Result, SpliceError};
use crate::loss::LossSums;
use crate::site::Site;
use crate::splice::score_batch;

/// What to evaluate on.
#[derive(Debug, Clone, PartialEq)]
pub struct SplicedConfig {
    /// Where the SAE reads and writes.
    pub site: Site,
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

/// Splices `sae` into `model` at `cfg.site` over the corpus; `progress` may stop early (the sums so
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
    cfg.site.check_widths(model, sae)?;
    let contexts = Contexts::new(corpus, tok, cfg.ctx_len, Cursor::default(), warn)?;
    let mut sums = LossSums::default();
    let budget = cfg.max_tokens.unwrap_or(u64::MAX);
    for batch in Batcher::new(contexts, cfg.batch_tokens.max(cfg.ctx_len)) {
        let batch = batch?;
        let (seqs, special): (Vec<&[u32]>, Vec<&[bool]>) =
            within_budget(&batch.contexts, budget - sums.positions)
                .into_iter()
                .unzip();
        sums.add(&score_batch(model, &seqs, &special, cfg.site, sae)?);
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

/// The contexts (token ids and special flags), the last one cut short, whose scored positions add up to
/// at most `left`. A causal model's logits at a position do not depend on later tokens, so cutting a
/// context leaves the scores of the positions kept unchanged.
fn within_budget(contexts: &[Context], left: u64) -> Vec<(&[u32], &[bool])> {
    let mut out = Vec::new();
    let mut taken = 0u64;
    for c in contexts {
        if taken >= left {
            break;
        }
        let mut len = c.ids.len();
        for i in 0..len.saturating_sub(1) {
            if !c.special[i] && !c.special[i + 1] {
                taken += 1;
                if taken == left {
                    len = i + 2;
                    break;
                }
            }
        }
        out.push((&c.ids[..len], &c.special[..len]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(special: &[bool]) -> Context {
        Context {
            doc: 0,
            window: 0,
            ids: (0..special.len() as u32).collect(),
            special: special.to_vec(),
        }
    }

    fn lens(v: &[(&[u32], &[bool])]) -> Vec<usize> {
        v.iter().map(|(ids, _)| ids.len()).collect()
    }

    #[test]
    fn the_budget_cuts_the_last_context_at_its_last_scored_position() {
        // Scored positions: i with neither token i nor i + 1 special. BOS + 4 text tokens: 3 scored.
        let a = ctx(&[true, false, false, false, false]);
        let b = ctx(&[true, false, false, false]); // 2 scored
        assert_eq!(lens(&within_budget(&[a.clone(), b.clone()], 10)), [5, 4]);
        // 4 positions: all of a, and b through its first scored position's target (tokens 0..=2).
        assert_eq!(lens(&within_budget(&[a.clone(), b.clone()], 4)), [5, 3]);
        // 2 positions: a through token 3 (scored 1 -> 2 and 2 -> 3), b left out.
        let both = [a, b];
        let cut = within_budget(&both, 2);
        assert_eq!(lens(&cut), [4]);
        assert_eq!(cut[0].1, &[true, false, false, false]);
    }
}
