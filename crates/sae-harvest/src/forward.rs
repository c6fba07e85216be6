//! One forward batch into rows: the positions that become rows (special tokens, the row budget), the
//! model's fast forward collecting every requested hook's packed activations, and the norm outliers left
//! out of every hook alike. Harvest ([`crate::harvest`]) and the live stream ([`crate::stream`]) share it.

use crate::batches::Batch;
use crate::error::{HarvestError, Result};
use crate::rows::{drop_outliers, select_rows, Rows};
use sae_lm::{Hook, Model, Packed, RowSink};

/// Collects each hook's packed rows of one forward pass.
struct HostRows {
    hooks: Vec<Hook>,
    got: Vec<Option<(Vec<f32>, usize)>>,
}

impl RowSink for HostRows {
    fn wants(&self, hook: Hook) -> bool {
        self.hooks.contains(&hook)
    }

    fn last_layer(&self) -> Option<usize> {
        self.hooks.iter().map(|h| h.layer).max()
    }

    fn put_rows(&mut self, hook: Hook, rows: &[f32], width: usize) -> sae_lm::Result<()> {
        if let Some(i) = self.hooks.iter().position(|h| *h == hook) {
            self.got[i] = Some((rows.to_vec(), width));
        }
        Ok(())
    }
}

/// What the forward pass of one batch gives.
pub(crate) struct Forwarded {
    /// Each hook's packed activations [tokens, width], in the order of the hooks asked for.
    pub hosts: Vec<(Vec<f32>, usize)>,
    /// The rows kept (the same for every hook).
    pub rows: Rows,
    /// Positions left out as norm outliers.
    pub dropped: u64,
}

impl Forwarded {
    /// Hook `h`'s kept rows, [rows, width] row-major.
    pub fn acts(&self, h: usize) -> Vec<f32> {
        let (host, w) = &self.hosts[h];
        let mut acts = Vec::with_capacity(self.rows.index.len() * w);
        for &r in &self.rows.index {
            acts.extend_from_slice(&host[r * w..(r + 1) * w]);
        }
        acts
    }
}

/// Runs `batch` through the model and keeps at most `budget` rows (special positions only with
/// `keep_special`; outliers beyond `max_norm_ratio` x the batch median norm at any hook left out).
pub(crate) fn forward_batch(
    m: &Model,
    hooks: &[Hook],
    batch: &Batch,
    keep_special: bool,
    budget: u64,
    max_norm_ratio: Option<f32>,
) -> Result<Forwarded> {
    let seqs: Vec<&[u32]> = batch.contexts.iter().map(|c| c.ids.as_slice()).collect();
    let rows = select_rows(&batch.contexts, keep_special, budget);
    let mut cap = HostRows {
        hooks: hooks.to_vec(),
        got: vec![None; hooks.len()],
    };
    m.forward_packed(&Packed::new(&seqs), &mut cap)?;
    let hosts = hooks
        .iter()
        .zip(cap.got)
        .map(|(h, got)| {
            got.ok_or_else(|| HarvestError::Invalid(format!("the model did not offer {h}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let (rows, dropped) = drop_outliers(rows, &hosts, max_norm_ratio);
    Ok(Forwarded {
        hosts,
        rows,
        dropped,
    })
}
