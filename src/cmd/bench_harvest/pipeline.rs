//! `sae bench harvest --corpus DIR`: the whole harvest against the forward pass alone.

use std::path::Path;

use sae_harvest::{Model, ResolvedModel};

/// End-to-end harvest rate next to the forward-only rate over the same contexts and layers.
#[derive(serde::Serialize)]
pub struct Pipeline {
    pub hook: String,
    pub tokens: u64,
    pub harvest_tokens_per_s: f64,
    pub forward_tokens_per_s: f64,
    pub ratio: f64,
}

impl Pipeline {
    pub fn describe(&self) -> String {
        format!(
            "sae harvest {} over the corpus: {:.0} tokens/s vs forward only {:.0} tokens/s: {:.2}x",
            self.hook, self.harvest_tokens_per_s, self.forward_tokens_per_s, self.ratio
        )
    }
}

pub fn run(
    _resolved: &ResolvedModel,
    _model: &Model,
    _corpus: &Path,
    _batch: usize,
    _ctx_len: usize,
    _tokens: u64,
) -> anyhow::Result<Pipeline> {
    anyhow::bail!("--corpus is not built yet")
}
