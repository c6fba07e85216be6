//! A transcoder's data: two row-aligned stores (the input hook's and the target hook's) read as one
//! stream of `[x | y]` rows. Two `ShuffledBatches` with the same options over stores of the same
//! shard layout draw the same row ids in the same order (the stream depends on the pieces' row
//! counts and the options only), so pairing is exact; [`check_aligned`] makes sure the stores are
//! that pair before anything is drawn.

use sae_store::{ShuffleOptions, ShuffledBatches, Source, Split, Store};

use crate::error::{Result, TrainError};
use crate::source::BatchSource;

fn misaligned(x: &Store, y: &Store, what: String) -> TrainError {
    TrainError::Invalid(format!(
        "{} and {} are not row-aligned: {what}",
        x.dir().display(),
        y.dir().display()
    ))
}

/// The model a store's rows came from, where its provenance names one.
fn model_of(s: &Source) -> Option<&str> {
    match s {
        Source::Synthetic(_) => None,
        Source::Harvest(h) => Some(&h.model_id),
        Source::Import(i) => i.model_id.as_deref(),
    }
}

/// The first provenance field (other than the hook) in which two stores differ.
fn provenance_mismatch(a: &Source, b: &Source) -> Option<String> {
    if let (Some(ma), Some(mb)) = (model_of(a), model_of(b)) {
        if ma != mb {
            return Some(format!("model {ma:?} vs {mb:?}"));
        }
    }
    let (Source::Harvest(a), Source::Harvest(b)) = (a, b) else {
        return None;
    };
    let fields = [
        ("revision", a.revision.clone(), b.revision.clone()),
        (
            "corpus",
            format!("{:?}", a.corpus),
            format!("{:?}", b.corpus),
        ),
        ("ctx_len", a.ctx_len.to_string(), b.ctx_len.to_string()),
        ("tokenizer", a.tokenizer.clone(), b.tokenizer.clone()),
        (
            "keep_special",
            a.keep_special.to_string(),
            b.keep_special.to_string(),
        ),
        (
            "max_norm_ratio",
            format!("{:?}", a.max_norm_ratio),
            format!("{:?}", b.max_norm_ratio),
        ),
    ];
    fields
        .into_iter()
        .find(|(_, va, vb)| va != vb)
        .map(|(n, va, vb)| format!("{n} {va} vs {vb}"))
}

/// The first position where two optional id columns differ (one present, the other not, counts
/// as a difference at row 0).
fn first_id_mismatch(a: &Option<Vec<u32>>, b: &Option<Vec<u32>>) -> Option<(usize, String)> {
    match (a, b) {
        (None, None) => None,
        (Some(a), Some(b)) => a
            .iter()
            .zip(b)
            .position(|(u, v)| u != v)
            .map(|r| (r, format!("{} vs {}", a[r], b[r]))),
        (Some(_), None) => Some((0, "present vs absent".into())),
        (None, Some(_)) => Some((0, "absent vs present".into())),
    }
}

/// Rows of id columns compared at a time (the check holds two such windows of each column).
const ID_WINDOW: usize = 1 << 16;

/// Checks that `x` and `y` hold the same rows of one producer: same row count, held-out split,
/// shard layout and provenance (model, corpus, ... everything but the hook), and equal token ids,
/// document ids and positions row by row. The error names the first mismatch. It streams the id
/// columns [`ID_WINDOW`] rows at a time and never reads the activations.
pub fn check_aligned(x: &Store, y: &Store) -> Result<()> {
    let (mx, my) = (x.manifest(), y.manifest());
    if mx.rows != my.rows {
        return Err(misaligned(x, y, format!("{} rows vs {}", mx.rows, my.rows)));
    }
    if mx.eval_rows != my.eval_rows {
        let msg = format!("{} held-out rows vs {}", mx.eval_rows, my.eval_rows);
        return Err(misaligned(x, y, msg));
    }
    let mut shard_rows = mx.shards.iter().zip(&my.shards);
    if let Some(i) = shard_rows.position(|(a, b)| a.rows != b.rows) {
        let msg = format!(
            "shard {i} holds {} rows vs {}",
            mx.shards[i].rows, my.shards[i].rows
        );
        return Err(misaligned(x, y, msg));
    }
    if mx.shards.len() != my.shards.len() {
        let msg = format!("{} shards vs {}", mx.shards.len(), my.shards.len());
        return Err(misaligned(x, y, msg));
    }
    if let Some(m) = provenance_mismatch(&mx.source, &my.source) {
        return Err(misaligned(x, y, m));
    }
    // The same shard layout: both streams cut the rows into the same windows.
    let windows = x
        .id_rows(Split::All, ID_WINDOW)
        .zip(y.id_rows(Split::All, ID_WINDOW));
    for (cx, cy) in windows {
        let (cx, cy) = (cx?, cy?);
        let cols = [
            ("token_ids", &cx.token_ids, &cy.token_ids),
            ("doc_ids", &cx.doc_ids, &cy.doc_ids),
            ("positions", &cx.positions, &cy.positions),
        ];
        for (name, a, b) in cols {
            if let Some((r, what)) = first_id_mismatch(a, b) {
                let row = cx.start_row + r as u64;
                return Err(misaligned(
                    x,
                    y,
                    format!("{name} differ at row {row} ({what})"),
                ));
            }
        }
    }
    Ok(())
}

/// The paired stream: each batch row is the input store's row followed by the target store's.
pub(crate) struct PairedBatches {
    pub(crate) x: Store,
    pub(crate) y: Store,
    xs: ShuffledBatches,
    ys: ShuffledBatches,
    opts: ShuffleOptions,
    bufs: (Vec<f32>, Vec<f32>),
    drawn: u64,
}

impl PairedBatches {
    /// The train split of both stores with the same options.
    pub(crate) fn new(x: Store, y: Store, opts: ShuffleOptions) -> PairedBatches {
        PairedBatches {
            xs: x.shuffled(Split::Train, opts),
            ys: y.shuffled(Split::Train, opts),
            x,
            y,
            opts,
            bufs: (Vec::new(), Vec::new()),
            drawn: 0,
        }
    }
}

/// Interleaves `x` [n, dx] and `y` [n, dy] into `out` [n, dx + dy].
fn interleave(x: &[f32], y: &[f32], dx: usize, dy: usize, out: &mut [f32]) {
    for ((o, a), b) in out
        .chunks_exact_mut(dx + dy)
        .zip(x.chunks_exact(dx))
        .zip(y.chunks_exact(dy))
    {
        o[..dx].copy_from_slice(a);
        o[dx..].copy_from_slice(b);
    }
}

impl BatchSource for PairedBatches {
    fn init_sample(&mut self, rows: usize, seed: u64) -> Result<Vec<f32>> {
        let n = (rows as u64).min(self.x.split_rows(Split::Train)).max(1) as usize;
        let opts = ShuffleOptions {
            batch: n,
            buffer_rows: self.opts.buffer_rows.max(n),
            seed,
        };
        let a = self.x.shuffled(Split::Train, opts).next_batch()?;
        let b = self.y.shuffled(Split::Train, opts).next_batch()?;
        let (dx, dy) = (self.x.d(), self.y.d());
        let mut out = vec![0f32; n * (dx + dy)];
        interleave(&a, &b, dx, dy, &mut out);
        Ok(out)
    }

    fn skip_batches(&mut self, n: u64) -> Result<()> {
        self.xs.skip_batches(n)?;
        self.ys.skip_batches(n)?;
        self.drawn += n;
        Ok(())
    }

    fn next_batch_into(&mut self, out: &mut [f32]) -> Result<()> {
        let (dx, dy) = (self.x.d(), self.y.d());
        let n = out.len() / (dx + dy);
        let (a, b) = &mut self.bufs;
        a.resize(n * dx, 0.0);
        b.resize(n * dy, 0.0);
        self.xs.next_batch_into(a)?;
        self.ys.next_batch_into(b)?;
        interleave(a, b, dx, dy, out);
        self.drawn += 1;
        Ok(())
    }

    fn progress(&self) -> u64 {
        self.drawn
    }
}
