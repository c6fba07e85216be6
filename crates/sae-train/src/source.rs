//! Where a member's batches come from. A [`BatchSource`] is one stream of `[batch, d]` batches (a seeded
//! mixing buffer over some rows); a [`Sources`] opens one per distinct stream of a run and says what the
//! rows are. [`StoreSources`] reads activation stores (`sae_store::ShuffledBatches`); a live stream
//! from a model's forward pass is another implementation, wired by the CLI (the trainer knows rows only).

use std::collections::HashMap;
use std::path::PathBuf;

use sae_store::{ShuffleOptions, ShuffledBatches, Source, Split, Store};

use crate::error::Result;
use crate::pair::{check_aligned, PairedBatches};
use crate::run::RunSpec;

/// One endless stream of training batches, a pure function of its rows and its options.
pub trait BatchSource {
    /// `rows` rows to initialise a fresh run from (input scale, b_dec), drawn with `seed`; the batches
    /// the stream gives are the same whether or not a sample was taken.
    fn init_sample(&mut self, rows: usize, seed: u64) -> Result<Vec<f32>>;
    /// Moves past the first `n` batches (a resumed run), reading as little as it can.
    fn skip_batches(&mut self, n: u64) -> Result<()>;
    /// Writes the next batch into `out` ([batch, d]).
    fn next_batch_into(&mut self, out: &mut [f32]) -> Result<()>;
    /// How far the source has read, in units comparable between the sources of one producer: the
    /// run steps the source furthest behind first, so sources fed by one forward pass keep in step.
    fn progress(&self) -> u64;
    /// Makes the source's position durable before a checkpoint relies on it.
    fn persist(&mut self) -> Result<()> {
        Ok(())
    }
}

/// What a member trains on.
#[derive(Clone, Debug)]
pub struct DataInfo {
    /// Row width (d_in + d_out for a transcoder, whose rows are `[x | y]`).
    pub d: usize,
    /// A transcoder's output width (its target store's d); None for an autoencoder.
    pub d_out: Option<usize>,
    /// A transcoder's output hook (the target store's), when its provenance names one.
    pub hook_out: Option<String>,
    /// What produced the rows (the saved SAE's provenance).
    pub source: Source,
    /// Where they are, as the saved SAE records it (`dataset_path`).
    pub path: String,
}

/// Opens the batch sources of a run's members.
pub trait Sources<'a> {
    /// What `spec` trains on.
    fn info(&mut self, spec: &RunSpec) -> Result<DataInfo>;
    /// The stream of `spec`'s data with `opts` (called once per distinct stream).
    fn open(&mut self, spec: &RunSpec, opts: ShuffleOptions) -> Result<Box<dyn BatchSource + 'a>>;
}

/// Sources that read each spec's activation store (its train split).
/// (A transcoder's target stores are checked row-aligned with their input store once.)
#[derive(Default)]
pub struct StoreSources {
    stores: HashMap<PathBuf, Store>,
    aligned: Vec<(PathBuf, PathBuf)>,
}

impl StoreSources {
    fn open_store(&mut self, path: &PathBuf) -> Result<&Store> {
        if !self.stores.contains_key(path) {
            let store = Store::open(path)?;
            self.stores.insert(path.clone(), store);
        }
        Ok(&self.stores[path])
    }

    fn store(&mut self, spec: &RunSpec) -> Result<&Store> {
        self.open_store(&spec.store)
    }

    /// A transcoder's target store, checked row-aligned with its input store.
    fn target(&mut self, spec: &RunSpec, target: &PathBuf) -> Result<Store> {
        let x = self.store(spec)?.clone();
        let y = self.open_store(target)?.clone();
        let pair = (spec.store.clone(), target.clone());
        if !self.aligned.contains(&pair) {
            check_aligned(&x, &y)?;
            self.aligned.push(pair);
        }
        Ok(y)
    }
}

impl Sources<'static> for StoreSources {
    fn info(&mut self, spec: &RunSpec) -> Result<DataInfo> {
        let (d_out, hook_out) = match &spec.target {
            Some(t) => {
                let y = self.target(spec, t)?;
                let hook = match &y.manifest().source {
                    Source::Harvest(h) => Some(h.hook.clone()),
                    Source::Import(i) => i.hook.clone(),
                    Source::Synthetic(_) => None,
                };
                (Some(y.d()), hook)
            }
            None => (None, None),
        };
        let store = self.store(spec)?;
        Ok(DataInfo {
            d: store.d() + d_out.unwrap_or(0),
            d_out,
            hook_out,
            source: store.manifest().source.clone(),
            path: spec.store.to_string_lossy().to_string(),
        })
    }

    fn open(&mut self, spec: &RunSpec, opts: ShuffleOptions) -> Result<Box<dyn BatchSource>> {
        if let Some(t) = &spec.target {
            let y = self.target(spec, t)?;
            let x = self.store(spec)?.clone();
            return Ok(Box::new(PairedBatches::new(x, y, opts)));
        }
        let store = self.store(spec)?.clone();
        Ok(Box::new(StoreBatches {
            data: store.shuffled(Split::Train, opts),
            store,
            opts,
            drawn: 0,
        }))
    }
}

/// A store's train split through `sae_store::ShuffledBatches`.
struct StoreBatches {
    store: Store,
    data: ShuffledBatches,
    opts: ShuffleOptions,
    drawn: u64,
}

impl BatchSource for StoreBatches {
    /// The first batch of a stream of its own: `rows` (at most the train split) drawn from a buffer
    /// of the stream's size seeded with `seed`.
    fn init_sample(&mut self, rows: usize, seed: u64) -> Result<Vec<f32>> {
        let n = (rows as u64)
            .min(self.store.split_rows(Split::Train))
            .max(1) as usize;
        let opts = ShuffleOptions {
            batch: n,
            buffer_rows: self.opts.buffer_rows.max(n),
            seed,
        };
        Ok(self.store.shuffled(Split::Train, opts).next_batch()?)
    }

    fn skip_batches(&mut self, n: u64) -> Result<()> {
        self.data.skip_batches(n)?;
        self.drawn += n;
        Ok(())
    }

    fn next_batch_into(&mut self, out: &mut [f32]) -> Result<()> {
        self.data.next_batch_into(out)?;
        self.drawn += 1;
        Ok(())
    }

    fn progress(&self) -> u64 {
        self.drawn
    }
}
