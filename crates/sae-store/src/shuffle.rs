//! Seeded shuffled batches: a mixing buffer fed by shards taken in a shuffled order, epoch after epoch.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::{Split, Store, StoreError};

/// Settings of [`ShuffledBatches`].
#[derive(Clone, Copy, Debug)]
pub struct ShuffleOptions {
    /// Rows per batch.
    pub batch: usize,
    /// Rows the mixing buffer holds before batches are drawn from it (bigger mixes better).
    pub buffer_rows: usize,
    /// Seed of the shard order and the draws.
    pub seed: u64,
}

/// Endless stream of `[batch, d]` batches drawn at random from a mixing buffer.
///
/// Each epoch visits the split's shards in a freshly shuffled order; a shard's rows are appended to the
/// buffer, and each batch row is drawn uniformly from the buffer (swap-remove). The buffer is refilled
/// whenever it holds fewer than `buffer_rows` rows and the epoch has shards left; when the epoch is
/// exhausted and the buffer cannot fill a batch, the next epoch starts. The stream depends only on the
/// store, the split and the options, so a resumed run can replay it with [`ShuffledBatches::skip_batches`].
pub struct ShuffledBatches {
    store: Store,
    opts: ShuffleOptions,
    pieces: Vec<(usize, usize, usize)>,
    order: Vec<usize>,
    next_piece: usize,
    buffer: Vec<f32>,
    rng: StdRng,
    split: Split,
}

impl ShuffledBatches {
    pub(crate) fn new(store: Store, split: Split, opts: ShuffleOptions) -> ShuffledBatches {
        let (lo, hi) = store.split_range(split);
        let pieces = store.pieces(lo, hi);
        ShuffledBatches {
            store,
            opts: ShuffleOptions {
                batch: opts.batch.max(1),
                buffer_rows: opts.buffer_rows.max(opts.batch.max(1)),
                seed: opts.seed,
            },
            pieces,
            order: Vec::new(),
            next_piece: 0,
            buffer: Vec::new(),
            rng: StdRng::seed_from_u64(opts.seed),
            split,
        }
    }

    /// Draws and discards `n` batches (the same work as drawing them, minus the caller's).
    pub fn skip_batches(&mut self, n: u64) -> Result<(), StoreError> {
        for _ in 0..n {
            self.next_batch()?;
        }
        Ok(())
    }

    fn buffered_rows(&self) -> usize {
        self.buffer.len() / self.store.d()
    }

    fn fill(&mut self) -> Result<(), StoreError> {
        if self.pieces.is_empty() {
            return Err(StoreError::EmptySplit {
                dir: self.store.dir().to_path_buf(),
                split: self.split.name(),
            });
        }
        while self.buffered_rows() < self.opts.buffer_rows {
            if self.next_piece == self.order.len() {
                if self.buffered_rows() >= self.opts.batch {
                    return Ok(());
                }
                self.order = (0..self.pieces.len()).collect();
                self.order.shuffle(&mut self.rng);
                self.next_piece = 0;
            }
            let (i, lo, hi) = self.pieces[self.order[self.next_piece]];
            self.next_piece += 1;
            let chunk = self.store.read_piece(i, lo, hi)?;
            self.buffer.extend_from_slice(&chunk.acts);
        }
        Ok(())
    }

    /// The next `[batch, d]` batch.
    pub fn next_batch(&mut self) -> Result<Vec<f32>, StoreError> {
        let d = self.store.d();
        if self.buffered_rows() < self.opts.buffer_rows.max(self.opts.batch) {
            self.fill()?;
        }
        let mut out = Vec::with_capacity(self.opts.batch * d);
        for _ in 0..self.opts.batch {
            let n = self.buffered_rows();
            let r = self.rng.random_range(0..n);
            out.extend_from_slice(&self.buffer[r * d..(r + 1) * d]);
            let last = n - 1;
            if r != last {
                self.buffer.copy_within(last * d..(last + 1) * d, r * d);
            }
            self.buffer.truncate(last * d);
        }
        Ok(out)
    }
}

impl Iterator for ShuffledBatches {
    type Item = Result<Vec<f32>, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.next_batch())
    }
}
