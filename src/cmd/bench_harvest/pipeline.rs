//! `sae bench harvest --corpus DIR`: the whole harvest (tokenize -> forward to the hooked layer -> store on
//! disk) against the forward pass alone over the same batches of the same corpus, in one run.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use sae_harvest::{harvest, Batcher, Contexts, Corpus, Cursor, HarvestConfig};
use sae_lm::{Hook, Model, Packed, ResolvedModel, RowSink, TextTokenizer};

/// End-to-end harvest rate next to the forward-only rate over the same contexts and layers.
#[derive(serde::Serialize)]
pub struct Pipeline {
    pub hook: String,
    /// Tokens (special ones included) run through the model by the harvest.
    pub tokens: u64,
    pub harvest_tokens_per_s: f64,
    pub forward_tokens_per_s: f64,
    /// harvest / forward.
    pub ratio: f64,
}

impl Pipeline {
    pub fn describe(&self) -> String {
        format!(
            "sae harvest {} ({} tokens of the corpus): {:.0} tokens/s vs forward only {:.0} tokens/s: {:.2}x",
            self.hook, self.tokens, self.harvest_tokens_per_s, self.forward_tokens_per_s, self.ratio
        )
    }
}

/// Keeps one hook's rows (the host copy a harvest makes too).
struct Keep(Hook, usize);

impl RowSink for Keep {
    fn wants(&self, hook: Hook) -> bool {
        hook == self.0
    }
    fn last_layer(&self) -> Option<usize> {
        Some(self.0.layer)
    }
    fn put_rows(&mut self, _: Hook, rows: &[f32], _: usize) -> sae_lm::Result<()> {
        self.1 += std::hint::black_box(rows.to_vec()).len();
        Ok(())
    }
}

/// The forward pass alone over the batches a harvest of `tokens` tokens runs (tokenized beforehand).
fn forward_only(
    model: &Model,
    tok: &TextTokenizer,
    corpus: &Corpus,
    hook: Hook,
    ctx_len: usize,
    batch_tokens: usize,
    tokens: u64,
) -> anyhow::Result<f64> {
    let mut quiet = |_: String| {};
    let contexts = Contexts::new(corpus, tok, ctx_len, Cursor::default(), &mut quiet)?;
    let mut batches = Vec::new();
    let mut total = 0u64;
    for b in Batcher::new(contexts, batch_tokens) {
        let b = b?;
        total += b.tokens() as u64;
        let seqs: Vec<&[u32]> = b.contexts.iter().map(|c| c.ids.as_slice()).collect();
        batches.push(Packed::new(&seqs));
        if total >= tokens {
            break;
        }
    }
    let start = Instant::now();
    for p in &batches {
        model.forward_packed(p, &mut Keep(hook, 0))?;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

pub fn run(
    resolved: &ResolvedModel,
    model: &Model,
    corpus_dir: &Path,
    hook: Hook,
    batch: usize,
    ctx_len: usize,
    rows: u64,
) -> anyhow::Result<Pipeline> {
    let mut tok = TextTokenizer::load(resolved).context("cannot load the tokenizer")?;
    tok.prepend_bos();
    let out = std::env::temp_dir().join(format!("sae-bench-harvest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let cfg = HarvestConfig {
        hooks: vec![hook.name()],
        corpus: vec![corpus_dir.to_path_buf()],
        out: out.clone(),
        ctx_len,
        max_tokens: Some(rows),
        batch,
        dtype: sae_store::DType::F32,
        keep_special: false,
        shard_rows: 16384,
        eval_frac: 0.05,
        max_norm_ratio: Some(10.0),
    };
    let corpus = Corpus::open(&cfg.corpus)?;
    // Harvest, forward, harvest, forward: the best of each two counts (other work only slows a run).
    let (mut harvest_rate, mut forward_rate, mut tokens) = (0f64, 0f64, 0u64);
    for _ in 0..2 {
        let _ = std::fs::remove_dir_all(&out);
        let start = Instant::now();
        let summary = harvest(
            resolved,
            model,
            &tok,
            &cfg,
            &mut |_| ControlFlow::Continue(()),
            &mut |_| {},
        );
        let secs = start.elapsed().as_secs_f64();
        let _ = std::fs::remove_dir_all(&out);
        let summary = summary.with_context(|| format!("harvest of {}", corpus_dir.display()))?;
        tokens = summary.tokens;
        harvest_rate = harvest_rate.max(tokens as f64 / secs);
        let f = forward_only(model, &tok, &corpus, hook, ctx_len, batch * ctx_len, tokens)?;
        forward_rate = forward_rate.max(f);
    }
    Ok(Pipeline {
        hook: hook.name(),
        tokens,
        harvest_tokens_per_s: harvest_rate,
        forward_tokens_per_s: forward_rate,
        ratio: harvest_rate / forward_rate,
    })
}
