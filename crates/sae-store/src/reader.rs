//! Reading a store: open and validate, then stream rows in order one shard at a time.

use std::path::{Path, PathBuf};

use crate::manifest::Manifest;
use crate::shard::{first_non_finite, ShardFile, DOC_IDS, POSITIONS, TOKEN_IDS};
use crate::{ShuffleOptions, ShuffledBatches, StoreError};

/// File name of the synthetic generator's ground truth (`features` [N, D], unit rows) in a store folder.
pub const GROUND_TRUTH_FILE: &str = "ground_truth.safetensors";

/// Which rows of the store to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// All rows but the held-out ones.
    Train,
    /// The held-out rows: the last `manifest.eval_rows` rows.
    Eval,
    /// Every row.
    All,
}

impl Split {
    /// Lower-case name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Eval => "eval",
            Split::All => "all",
        }
    }
}

/// A contiguous run of rows, decoded to f32 / u32.
#[derive(Clone, Debug)]
pub struct Chunk {
    /// Store row index of the first row.
    pub start_row: u64,
    /// Number of rows.
    pub rows: usize,
    /// Width of a row.
    pub d: usize,
    /// [rows, d] row-major.
    pub acts: Vec<f32>,
    /// [rows], when the store has token ids.
    pub token_ids: Option<Vec<u32>>,
    /// [rows], when the store has document ids.
    pub doc_ids: Option<Vec<u32>>,
    /// [rows], when the store has positions.
    pub positions: Option<Vec<u32>>,
}

/// The id columns of a contiguous run of rows, without their activations.
#[derive(Clone, Debug)]
pub struct IdRows {
    /// Store row index of the first row.
    pub start_row: u64,
    /// Number of rows.
    pub rows: usize,
    /// [rows], when the store has token ids.
    pub token_ids: Option<Vec<u32>>,
    /// [rows], when the store has document ids.
    pub doc_ids: Option<Vec<u32>>,
    /// [rows], when the store has positions.
    pub positions: Option<Vec<u32>>,
}

/// An opened, validated activation store.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
    manifest: Manifest,
}

impl Store {
    /// Opens the store in `dir`, checking the manifest and every shard's header and size.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let manifest = Manifest::read(dir)?;
        if !manifest.complete {
            return Err(StoreError::Incomplete {
                dir: dir.to_path_buf(),
            });
        }
        let store = Store {
            dir: dir.to_path_buf(),
            manifest,
        };
        for i in 0..store.manifest.shards.len() {
            store.open_shard(i)?;
        }
        Ok(store)
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Width of a row.
    pub fn d(&self) -> usize {
        self.manifest.d
    }

    /// The store folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a synthetic store keeps its ground-truth features.
    pub fn ground_truth_path(&self) -> PathBuf {
        self.dir.join(GROUND_TRUTH_FILE)
    }

    /// Store rows `[lo, hi)` covered by `split`.
    pub fn split_range(&self, split: Split) -> (u64, u64) {
        let rows = self.manifest.rows;
        let boundary = rows - self.manifest.eval_rows;
        match split {
            Split::Train => (0, boundary),
            Split::Eval => (boundary, rows),
            Split::All => (0, rows),
        }
    }

    /// Number of rows in `split`.
    pub fn split_rows(&self, split: Split) -> u64 {
        let (lo, hi) = self.split_range(split);
        hi - lo
    }

    /// Streams the rows of `split` in order, one shard (or the part of it in the split) per chunk.
    pub fn chunks(&self, split: Split) -> ChunkIter {
        let (lo, hi) = self.split_range(split);
        ChunkIter {
            store: self.clone(),
            pieces: self.pieces(lo, hi).into_iter(),
        }
    }

    /// Streams the id columns of `split` in order, at most `max_rows` rows (and one shard) per
    /// item; the activations are not read.
    pub fn id_rows(&self, split: Split, max_rows: usize) -> IdRowsIter {
        let (lo, hi) = self.split_range(split);
        let step = max_rows.max(1);
        let windows: Vec<(usize, usize, usize)> = self
            .pieces(lo, hi)
            .into_iter()
            .flat_map(|(i, a, b)| (a..b).step_by(step).map(move |w| (i, w, (w + step).min(b))))
            .collect();
        IdRowsIter {
            store: self.clone(),
            windows: windows.into_iter(),
        }
    }

    /// Endless seeded shuffled batches of `split` (see [`ShuffledBatches`]).
    pub fn shuffled(&self, split: Split, opts: ShuffleOptions) -> ShuffledBatches {
        ShuffledBatches::new(self.clone(), split, opts)
    }

    /// The (shard index, shard-relative lo, hi) pieces covering store rows `[lo, hi)`.
    pub(crate) fn pieces(&self, lo: u64, hi: u64) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        let mut start = 0u64;
        for (i, s) in self.manifest.shards.iter().enumerate() {
            let end = start + s.rows;
            let a = lo.max(start);
            let b = hi.min(end);
            if a < b {
                out.push((i, (a - start) as usize, (b - start) as usize));
            }
            start = end;
        }
        out
    }

    fn shard_path(&self, i: usize) -> PathBuf {
        self.dir.join(&self.manifest.shards[i].file)
    }

    fn columns(&self) -> [bool; 3] {
        let m = &self.manifest;
        [m.has_token_ids, m.has_doc_ids, m.has_positions]
    }

    fn open_shard(&self, i: usize) -> Result<ShardFile, StoreError> {
        let cols: Vec<&str> = [TOKEN_IDS, DOC_IDS, POSITIONS]
            .into_iter()
            .zip(self.columns())
            .filter_map(|(n, on)| on.then_some(n))
            .collect();
        let m = &self.manifest;
        ShardFile::open(&self.shard_path(i), m.shards[i].rows, m.d, m.dtype, &cols)
    }

    /// Store row index of shard `i`'s first row.
    fn shard_start(&self, i: usize) -> u64 {
        self.manifest.shards[..i].iter().map(|s| s.rows).sum()
    }

    /// Reads only the `acts` of shard-relative rows `lo..hi` of shard `i` (what training needs),
    /// rejecting NaN / Inf with shard and row named.
    pub(crate) fn read_acts(&self, i: usize, lo: usize, hi: usize) -> Result<Vec<f32>, StoreError> {
        let path = self.shard_path(i);
        let m = &self.manifest;
        let shard = ShardFile::open(&path, m.shards[i].rows, m.d, m.dtype, &[])?;
        let acts = shard.read(&path, m.d, lo, hi, [false; 3])?.acts;
        if let Some((r, col, value)) = first_non_finite(&acts, m.d) {
            return Err(StoreError::NonFinite {
                shard: m.shards[i].file.clone(),
                row: lo + r,
                store_row: self.shard_start(i) + (lo + r) as u64,
                col,
                value,
            });
        }
        Ok(acts)
    }

    /// Reads shard-relative rows `lo..hi` of shard `i`, rejecting NaN / Inf with shard and row named.
    pub(crate) fn read_piece(&self, i: usize, lo: usize, hi: usize) -> Result<Chunk, StoreError> {
        let path = self.shard_path(i);
        let d = self.manifest.d;
        let rows = self.open_shard(i)?.read(&path, d, lo, hi, self.columns())?;
        let start_row = self.shard_start(i) + lo as u64;
        if let Some((r, col, value)) = first_non_finite(&rows.acts, d) {
            return Err(StoreError::NonFinite {
                shard: self.manifest.shards[i].file.clone(),
                row: lo + r,
                store_row: start_row + r as u64,
                col,
                value,
            });
        }
        Ok(Chunk {
            start_row,
            rows: hi - lo,
            d,
            acts: rows.acts,
            token_ids: rows.token_ids,
            doc_ids: rows.doc_ids,
            positions: rows.positions,
        })
    }
}

/// Iterator over the chunks of one split, in row order.
pub struct ChunkIter {
    store: Store,
    pieces: std::vec::IntoIter<(usize, usize, usize)>,
}

impl Iterator for ChunkIter {
    type Item = Result<Chunk, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (i, lo, hi) = self.pieces.next()?;
        Some(self.store.read_piece(i, lo, hi))
    }
}

/// Iterator over the id columns of one split, in row order (see [`Store::id_rows`]).
pub struct IdRowsIter {
    store: Store,
    windows: std::vec::IntoIter<(usize, usize, usize)>,
}

impl Iterator for IdRowsIter {
    type Item = Result<IdRows, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (i, lo, hi) = self.windows.next()?;
        let s = &self.store;
        let read = s
            .open_shard(i)
            .and_then(|f| f.read_ids(&s.shard_path(i), lo, hi, s.columns()));
        Some(read.map(|r| IdRows {
            start_row: s.shard_start(i) + lo as u64,
            rows: hi - lo,
            token_ids: r.token_ids,
            doc_ids: r.doc_ids,
            positions: r.positions,
        }))
    }
}
