//! Seeded shuffled batches: a mixing buffer fed by shards taken in a shuffled order, epoch after
//! epoch, read and decoded ahead of the consumer by a background thread.

use crate::draw::{draw_ids, draw_rows};
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

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
/// Epoch e visits the split's pieces (shards, or the part of a shard inside the split) in an order
/// shuffled by a generator seeded from (seed, e) alone; a piece's rows are appended to the buffer,
/// and each batch row is drawn uniformly from the buffer (swap-remove) by a second generator. The
/// buffer is refilled whenever it holds fewer than `buffer_rows` rows and the epoch has pieces
/// left; when the epoch is exhausted and the buffer cannot fill a batch, the next epoch starts.
/// The stream depends only on the store, the split and the options. Only the `acts` column is
/// decoded, by a background thread one piece ahead, so the consumer rarely waits for the disk;
/// [`ShuffledBatches::skip_batches`] replays the draws on row ids and reads only the pieces whose
/// rows are still in the buffer, so a resumed run does not re-read what it already trained on.
pub struct ShuffledBatches {
    store: Store,
    opts: ShuffleOptions,
    pieces: Vec<(usize, usize, usize)>,
    split: Split,
    rng: StdRng,
    buffer: Vec<f32>,
    /// The next piece to consume: (epoch, position in that epoch's order).
    next: (u64, usize),
    feed: Option<Feed>,
    started: bool,
}

/// The background reader: decoded pieces in stream order.
struct Feed {
    rx: Receiver<Result<Vec<f32>, StoreError>>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        // Dropping the receiver makes the reader's next send fail, and it stops.
        let (_tx, rx) = sync_channel(1);
        drop(std::mem::replace(&mut self.rx, rx));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The piece order of epoch `epoch` (a pure function of the seed and the epoch).
fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mix = seed ^ 0x005E_ED0F_5A4D ^ epoch.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(mix));
    order
}

impl ShuffledBatches {
    pub(crate) fn new(store: Store, split: Split, opts: ShuffleOptions) -> ShuffledBatches {
        let (lo, hi) = store.split_range(split);
        let pieces = store.pieces(lo, hi);
        let batch = opts.batch.max(1);
        let buffer_rows = opts.buffer_rows.max(batch);
        let largest = pieces.iter().map(|p| p.2 - p.1).max().unwrap_or(0);
        // Never more than buffer_rows + one piece: reserved once, never reallocated.
        let buffer = Vec::with_capacity((buffer_rows + largest) * store.d());
        ShuffledBatches {
            store,
            opts: ShuffleOptions {
                batch,
                buffer_rows,
                seed: opts.seed,
            },
            pieces,
            split,
            rng: StdRng::seed_from_u64(opts.seed),
            buffer,
            next: (0, 0),
            feed: None,
            started: false,
        }
    }

    fn empty_split(&self) -> StoreError {
        StoreError::EmptySplit {
            dir: self.store.dir().to_path_buf(),
            split: self.split.name(),
        }
    }

    /// Starts the background reader at `self.next`.
    fn feed(&mut self) -> &mut Feed {
        if self.feed.is_none() {
            let (tx, rx) = sync_channel(1);
            let store = self.store.clone();
            let pieces = self.pieces.clone();
            let seed = self.opts.seed;
            let (mut epoch, mut at) = self.next;
            let handle = std::thread::spawn(move || loop {
                let order = epoch_order(pieces.len(), seed, epoch);
                for &p in &order[at..] {
                    let (i, lo, hi) = pieces[p];
                    let piece = store.read_acts(i, lo, hi);
                    let failed = piece.is_err();
                    if tx.send(piece).is_err() || failed {
                        return;
                    }
                }
                epoch += 1;
                at = 0;
            });
            self.feed = Some(Feed {
                rx,
                handle: Some(handle),
            });
        }
        self.feed.as_mut().expect("just set")
    }

    fn buffered_rows(&self) -> usize {
        self.buffer.len() / self.store.d()
    }

    /// Advances `next` past one piece; the fill rule decides when an epoch ends.
    fn take_piece(&mut self) -> Result<Vec<f32>, StoreError> {
        let rx = &self.feed().rx;
        let piece = rx.recv().unwrap_or(Err(StoreError::ReaderStopped))?;
        self.next.1 += 1;
        Ok(piece)
    }

    /// Whether the fill must go on (and, at an epoch's end, moves `next` to the next epoch).
    fn needs_piece(next: &mut (u64, usize), n: usize, buffered: usize, o: &ShuffleOptions) -> bool {
        if buffered >= o.buffer_rows {
            return false;
        }
        if next.1 == n {
            if buffered >= o.batch {
                return false;
            }
            *next = (next.0 + 1, 0);
        }
        true
    }

    fn fill(&mut self) -> Result<(), StoreError> {
        if self.pieces.is_empty() {
            return Err(self.empty_split());
        }
        let n = self.pieces.len();
        loop {
            let buffered = self.buffered_rows();
            if !Self::needs_piece(&mut self.next, n, buffered, &self.opts) {
                break;
            }
            let piece = self.take_piece()?;
            self.buffer.extend_from_slice(&piece);
        }
        Ok(())
    }

    /// Moves the stream past its first `n` batches without materialising them: the draws are
    /// replayed on row ids, then only the pieces whose rows are still buffered are read. Later in
    /// a stream it draws and discards.
    pub fn skip_batches(&mut self, n: u64) -> Result<(), StoreError> {
        if self.started || n == 0 {
            let mut scratch = vec![0f32; self.opts.batch * self.store.d()];
            for _ in 0..n {
                self.next_batch_into(&mut scratch)?;
            }
            return Ok(());
        }
        if self.pieces.is_empty() {
            return Err(self.empty_split());
        }
        let np = self.pieces.len();
        // ids: (consumed piece number, row within the piece); consumed[s] = piece index.
        let mut consumed: Vec<usize> = Vec::new();
        let mut ids: Vec<(u32, u32)> = Vec::new();
        let mut order = epoch_order(np, self.opts.seed, 0);
        for _ in 0..n {
            if ids.len() < self.opts.buffer_rows {
                loop {
                    let epoch = self.next.0;
                    if !Self::needs_piece(&mut self.next, np, ids.len(), &self.opts) {
                        break;
                    }
                    if self.next.0 != epoch {
                        order = epoch_order(np, self.opts.seed, self.next.0);
                    }
                    let p = order[self.next.1];
                    self.next.1 += 1;
                    let rows = self.pieces[p].2 - self.pieces[p].1;
                    let s = consumed.len() as u32;
                    consumed.push(p);
                    ids.extend((0..rows as u32).map(|r| (s, r)));
                }
            }
            draw_ids(&mut ids, self.opts.batch, &mut self.rng);
        }
        self.materialise(&ids, &consumed)
    }

    /// Fills the buffer with the rows `ids` name, in that order, reading each needed piece once.
    fn materialise(&mut self, ids: &[(u32, u32)], consumed: &[usize]) -> Result<(), StoreError> {
        let d = self.store.d();
        let mut need: Vec<u32> = ids.iter().map(|x| x.0).collect();
        need.sort_unstable();
        need.dedup();
        let mut data = std::collections::HashMap::new();
        for s in need {
            let (i, lo, hi) = self.pieces[consumed[s as usize]];
            data.insert(s, self.store.read_acts(i, lo, hi)?);
        }
        self.buffer.clear();
        for &(s, r) in ids {
            let piece = &data[&s];
            self.buffer
                .extend_from_slice(&piece[r as usize * d..(r as usize + 1) * d]);
        }
        self.started = true;
        Ok(())
    }

    /// Writes the next batch into `out` ([batch, d]).
    pub fn next_batch_into(&mut self, out: &mut [f32]) -> Result<(), StoreError> {
        let d = self.store.d();
        assert_eq!(out.len(), self.opts.batch * d, "batch buffer size");
        self.started = true;
        if self.buffered_rows() < self.opts.buffer_rows {
            self.fill()?;
        }
        draw_rows(&mut self.buffer, d, &mut self.rng, out);
        Ok(())
    }

    /// The next `[batch, d]` batch.
    pub fn next_batch(&mut self) -> Result<Vec<f32>, StoreError> {
        let mut out = vec![0f32; self.opts.batch * self.store.d()];
        self.next_batch_into(&mut out)?;
        Ok(out)
    }
}

impl Iterator for ShuffledBatches {
    type Item = Result<Vec<f32>, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.next_batch())
    }
}
