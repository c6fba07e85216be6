//! The stream's mixing buffer: the fill and draw rule of `sae_store::ShuffledBatches` over pieces that
//! arrive in stream order. While the buffer holds fewer than `buffer_rows` rows the next piece is appended;
//! once an epoch's last piece is in, the buffer is drained down to one batch before the next epoch's first
//! piece comes; each batch row is drawn uniformly from the buffer (swap-remove) by a generator seeded by
//! the seed alone. [`Mixer::skip`] replays the draws on row ids, so a resumed stream needs the rows of only
//! the pieces still buffered.

use sae_store::{draw_ids, draw_rows};
use std::rc::Rc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sae_store::ShuffleOptions;

use crate::error::{HarvestError, Result};

/// What the mixer needs to know of a piece before it has its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PieceMeta {
    /// Rows in the piece.
    pub rows: usize,
    /// It is the last piece of its epoch.
    pub last: bool,
}

/// The pieces of a stream, numbered in stream order from 0 (epoch after epoch).
pub(crate) trait Pieces {
    /// Piece `j`'s size and whether it ends its epoch.
    fn meta(&mut self, j: u64) -> Result<PieceMeta>;
    /// Piece `j`'s rows, [rows, d] row-major.
    fn rows(&mut self, j: u64) -> Result<Rc<Vec<f32>>>;
    /// The consumer needs no piece before `j` any more.
    fn passed(&mut self, j: u64);
}

/// A seeded mixing buffer over a stream of pieces.
pub(crate) struct Mixer {
    d: usize,
    batch: usize,
    buffer_rows: usize,
    rng: StdRng,
    buffer: Vec<f32>,
    /// The next piece to take.
    next: u64,
    /// The last piece taken ended its epoch.
    epoch_done: bool,
    /// Rows the current epoch has given so far.
    epoch_rows: u64,
    started: bool,
}

fn empty_epoch() -> HarvestError {
    HarvestError::Invalid("the stream's corpus gives no rows: an epoch ended empty".into())
}

impl Mixer {
    /// A mixer of rows of width `d` with `opts` (batch and buffer at least 1 and one batch).
    pub fn new(d: usize, opts: ShuffleOptions) -> Mixer {
        let batch = opts.batch.max(1);
        Mixer {
            d,
            batch,
            buffer_rows: opts.buffer_rows.max(batch),
            rng: StdRng::seed_from_u64(opts.seed),
            buffer: Vec::new(),
            next: 0,
            epoch_done: false,
            epoch_rows: 0,
            started: false,
        }
    }

    /// Pieces taken so far.
    pub fn taken(&self) -> u64 {
        self.next
    }

    fn buffered(&self) -> usize {
        self.buffer.len() / self.d
    }

    /// Whether the fill goes on with `buffered` rows; at an epoch's end starts the next epoch.
    fn needs_piece(&mut self, buffered: usize) -> Result<bool> {
        if buffered >= self.buffer_rows || (self.epoch_done && buffered >= self.batch) {
            return Ok(false);
        }
        if self.epoch_done {
            if self.epoch_rows == 0 {
                return Err(empty_epoch());
            }
            (self.epoch_done, self.epoch_rows) = (false, 0);
        }
        Ok(true)
    }

    /// Notes that piece `meta` was taken.
    fn took(&mut self, meta: PieceMeta) {
        self.next += 1;
        self.epoch_rows += meta.rows as u64;
        self.epoch_done = meta.last;
    }

    fn fill(&mut self, pieces: &mut dyn Pieces) -> Result<()> {
        while self.needs_piece(self.buffered())? {
            let meta = pieces.meta(self.next)?;
            let rows = pieces.rows(self.next)?;
            if rows.len() != meta.rows * self.d {
                return Err(HarvestError::Invalid(format!(
                    "stream piece {} has {} values, not {} rows of {}",
                    self.next,
                    rows.len(),
                    meta.rows,
                    self.d
                )));
            }
            self.buffer.extend_from_slice(&rows);
            self.took(meta);
            pieces.passed(self.next);
        }
        Ok(())
    }

    /// Writes the next batch into `out` ([batch, d]).
    pub fn next_batch_into(&mut self, pieces: &mut dyn Pieces, out: &mut [f32]) -> Result<()> {
        let d = self.d;
        assert_eq!(out.len(), self.batch * d, "batch buffer size");
        self.started = true;
        if self.buffered() < self.buffer_rows {
            self.fill(pieces)?;
        }
        draw_rows(&mut self.buffer, d, &mut self.rng, out);
        Ok(())
    }

    /// `rows` distinct rows drawn (by a generator seeded with `seed`) from the buffer as it stands before
    /// the first batch, leaving the buffer and the draws of the batches as they are: the sample a fresh
    /// run initialises from.
    pub fn sample(&mut self, pieces: &mut dyn Pieces, rows: usize, seed: u64) -> Result<Vec<f32>> {
        self.fill(pieces)?;
        let (d, n) = (self.d, self.buffered());
        let k = rows.clamp(1, n); // n >= one batch after a fill
        let mut rng = StdRng::seed_from_u64(seed);
        let mut idx: Vec<usize> = (0..n).collect();
        let mut out = Vec::with_capacity(k * d);
        for i in 0..k {
            let j = rng.random_range(i..n);
            idx.swap(i, j);
            out.extend_from_slice(&self.buffer[idx[i] * d..(idx[i] + 1) * d]);
        }
        Ok(out)
    }

    /// Moves the stream past its first `n` batches: the draws are replayed on row ids, then only the
    /// pieces whose rows are still buffered are fetched. Later in a stream it draws and discards.
    pub fn skip(&mut self, pieces: &mut dyn Pieces, n: u64) -> Result<()> {
        if self.started || n == 0 {
            let mut scratch = vec![0f32; self.batch * self.d];
            for _ in 0..n {
                self.next_batch_into(pieces, &mut scratch)?;
            }
            return Ok(());
        }
        let mut ids: Vec<(u64, u32)> = Vec::new();
        for _ in 0..n {
            while ids.len() < self.buffer_rows && self.needs_piece(ids.len())? {
                let meta = pieces.meta(self.next)?;
                ids.extend((0..meta.rows as u32).map(|r| (self.next, r)));
                self.took(meta);
            }
            draw_ids(&mut ids, self.batch, &mut self.rng);
        }
        let mut need: Vec<u64> = ids.iter().map(|x| x.0).collect();
        need.sort_unstable();
        need.dedup();
        let mut data = std::collections::HashMap::new();
        for j in need {
            data.insert(j, pieces.rows(j)?);
        }
        let d = self.d;
        self.buffer.clear();
        for &(j, r) in &ids {
            let r = r as usize;
            self.buffer.extend_from_slice(&data[&j][r * d..(r + 1) * d]);
        }
        pieces.passed(self.next);
        self.started = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Pieces of the given sizes, the last one ending the epoch, repeated epoch after epoch; row r of
    /// piece j is [j, r]. Records which pieces' rows were asked for.
    struct Tagged {
        sizes: Vec<usize>,
        fetched: BTreeSet<u64>,
    }

    impl Pieces for Tagged {
        fn meta(&mut self, j: u64) -> Result<PieceMeta> {
            let i = (j % self.sizes.len() as u64) as usize;
            let last = i + 1 == self.sizes.len();
            Ok(PieceMeta {
                rows: self.sizes[i],
                last,
            })
        }

        fn rows(&mut self, j: u64) -> Result<Rc<Vec<f32>>> {
            self.fetched.insert(j);
            let n = self.meta(j)?.rows;
            Ok(Rc::new((0..n).flat_map(|r| [j as f32, r as f32]).collect()))
        }

        fn passed(&mut self, _: u64) {}
    }

    fn tagged() -> Tagged {
        Tagged {
            sizes: vec![5, 3, 8, 0, 1, 6],
            fetched: BTreeSet::new(),
        }
    }

    const OPTS: ShuffleOptions = ShuffleOptions {
        batch: 4,
        buffer_rows: 11,
        seed: 3,
    };

    #[test]
    fn a_replayed_skip_fetches_exactly_the_buffered_pieces_and_continues_identically() {
        for n in [1, 5, 17, 40] {
            // Reference: draw n batches, then see which pieces' rows are still buffered.
            let (mut a, mut pa) = (Mixer::new(2, OPTS), tagged());
            let mut out = vec![0f32; 8];
            for _ in 0..n {
                a.next_batch_into(&mut pa, &mut out).unwrap();
            }
            let buffered: BTreeSet<u64> = a.buffer.chunks(2).map(|r| r[0] as u64).collect();
            let (mut b, mut pb) = (Mixer::new(2, OPTS), tagged());
            b.skip(&mut pb, n).unwrap();
            assert_eq!(pb.fetched, buffered, "after {n} batches");
            assert_eq!(b.taken(), a.taken());
            let mut out_b = vec![0f32; 8];
            for _ in 0..30 {
                a.next_batch_into(&mut pa, &mut out).unwrap();
                b.next_batch_into(&mut pb, &mut out_b).unwrap();
                assert_eq!(out, out_b);
            }
        }
    }

    #[test]
    fn every_row_of_an_epoch_is_drawn_once_before_the_buffer_moves_on() {
        // A buffer larger than the epoch: the first epoch's 23 rows all come out, each once, in the
        // first 5 batches (20 rows) plus what is drained before the second epoch joins.
        let opts = ShuffleOptions {
            buffer_rows: 1000,
            ..OPTS
        };
        let (mut m, mut p) = (Mixer::new(2, opts), tagged());
        let mut seen = BTreeSet::new();
        let mut out = vec![0f32; 8];
        for _ in 0..5 {
            m.next_batch_into(&mut p, &mut out).unwrap();
            for r in out.chunks(2) {
                assert!(
                    r[0] < 6.0,
                    "a second-epoch row came before the first was drained"
                );
                assert!(seen.insert((r[0] as u64, r[1] as u64)), "a row drawn twice");
            }
        }
        assert_eq!(m.taken(), 6);
    }

    #[test]
    fn the_init_sample_leaves_the_batches_unchanged() {
        let (mut a, mut pa) = (Mixer::new(2, OPTS), tagged());
        let (mut b, mut pb) = (Mixer::new(2, OPTS), tagged());
        let sample = b.sample(&mut pb, 6, 99).unwrap();
        assert_eq!(sample.len(), 12);
        let rows: BTreeSet<(u32, u32)> = sample
            .chunks(2)
            .map(|r| (r[0] as u32, r[1] as u32))
            .collect();
        assert_eq!(rows.len(), 6, "sampled rows are distinct");
        let (mut x, mut y) = (vec![0f32; 8], vec![0f32; 8]);
        for _ in 0..10 {
            a.next_batch_into(&mut pa, &mut x).unwrap();
            b.next_batch_into(&mut pb, &mut y).unwrap();
            assert_eq!(x, y);
        }
    }

    /// One piece (a whole one-shard store) per epoch.
    struct Whole(Rc<Vec<f32>>, usize);

    impl Pieces for Whole {
        fn meta(&mut self, _: u64) -> Result<PieceMeta> {
            Ok(PieceMeta {
                rows: self.1,
                last: true,
            })
        }

        fn rows(&mut self, _: u64) -> Result<Rc<Vec<f32>>> {
            Ok(self.0.clone())
        }

        fn passed(&mut self, _: u64) {}
    }

    #[test]
    fn batches_equal_shuffled_batches_over_a_one_shard_store() {
        use sae_store::{DType, HarvestSource, RowBatch, Source, Split, Store, StoreSpec};
        let dir = tempfile::tempdir().unwrap();
        let (d, n) = (3, 37);
        let rows: Vec<f32> = (0..n * d).map(|v| v as f32 * 0.5).collect();
        let source = Source::Harvest(HarvestSource {
            model_id: "m".into(),
            revision: "r".into(),
            hook: "blocks.0.hook_resid_post".into(),
            ctx_len: 8,
            corpus: vec![],
            tokenizer: "t".into(),
            keep_special: false,
            dtype: "f32".into(),
            max_norm_ratio: None,
        });
        let spec = StoreSpec {
            d,
            dtype: DType::F32,
            shard_rows: 1000,
            source,
            with_token_ids: false,
            with_doc_ids: false,
            with_positions: false,
        };
        let mut w = sae_store::StoreWriter::create(dir.path(), spec).unwrap();
        let batch = RowBatch {
            acts: &rows,
            token_ids: None,
            doc_ids: None,
            positions: None,
        };
        w.push(batch, None).unwrap();
        w.finish(0).unwrap();
        let store = Store::open(dir.path()).unwrap();
        for (skip, buffer_rows) in [(0, 10), (0, 100), (7, 10), (30, 16)] {
            let opts = ShuffleOptions {
                batch: 5,
                buffer_rows,
                seed: 11,
            };
            let mut reference = store.shuffled(Split::Train, opts);
            reference.skip_batches(skip).unwrap();
            let mut m = Mixer::new(d, opts);
            let mut p = Whole(Rc::new(rows.clone()), n);
            m.skip(&mut p, skip).unwrap();
            let mut out = vec![0f32; 5 * d];
            for _ in 0..40 {
                m.next_batch_into(&mut p, &mut out).unwrap();
                assert_eq!(
                    out,
                    reference.next_batch().unwrap(),
                    "skip {skip}, buffer {buffer_rows}"
                );
            }
        }
    }
}
