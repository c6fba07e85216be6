//! Activation store: a folder with a versioned `manifest.json` and sharded safetensors files holding
//! `acts` [rows, d] (f32, f16 or bf16) plus optional `token_ids`, `doc_ids` and `positions` [rows] (u32).
//!
//! Harvest and `sae synth` write stores with [`StoreWriter`]; training, evaluation and reports read them
//! with [`Store`]: in row order ([`Store::chunks`], one shard at a time, never the whole store in
//! memory) or as seeded shuffled batches ([`Store::shuffled`], a mixing buffer across shards).
//! The last `manifest.eval_rows` rows form the held-out split.

mod atomic;
mod draw;
mod error;
mod hierarchy;
mod import;
mod lock;
mod manifest;
mod reader;
mod shard;
mod shuffle;
mod writer;

pub use atomic::atomic_write;
pub use draw::{draw_ids, draw_rows};
pub use error::StoreError;
pub use hierarchy::{Hierarchy, ParentFeature, HIERARCHY_FILE};
pub use import::{import, HeldOut, ImportError, ImportSpec};
pub use lock::{process_start_ticks, Liveness, LockError, LockHolder, OutputLock, LOCK_FILE};
pub use manifest::{
    DType, HarvestSource, ImportSource, ImportedFile, Manifest, ShardMeta, Source, SynthSource,
    MANIFEST_FILE, MANIFEST_FORMAT, MANIFEST_VERSION,
};
pub use reader::{Chunk, ChunkIter, IdRows, IdRowsIter, Split, Store, GROUND_TRUTH_FILE};
pub use shuffle::{ShuffleOptions, ShuffledBatches};
pub use writer::{RowBatch, StoreSpec, StoreWriter};
