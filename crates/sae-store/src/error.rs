//! Typed errors of the activation store.

use std::path::PathBuf;

/// Everything that can go wrong reading or writing an activation store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file system operation failed.
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    /// The folder holds no `manifest.json`.
    #[error("no activation store at {} (manifest.json not found)", dir.display())]
    Missing { dir: PathBuf },
    /// `manifest.json` could not be parsed or is inconsistent.
    #[error("bad manifest {}: {msg}", path.display())]
    BadManifest { path: PathBuf, msg: String },
    /// A store side file (e.g. `hierarchy.json`) could not be parsed.
    #[error("bad {}: {msg}", path.display())]
    BadFile { path: PathBuf, msg: String },
    /// The manifest was written by a newer (or unknown) version of the format.
    #[error("manifest {} has format version {found}; this build reads version {supported}", path.display())]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// The store was not finished (an interrupted harvest or synth); resume it first.
    #[error("activation store at {} is incomplete (interrupted while being written); resume or recreate it", dir.display())]
    Incomplete { dir: PathBuf },
    /// `create` was pointed at a folder that already holds a store.
    #[error("{} already holds an activation store; choose another folder or resume it", dir.display())]
    AlreadyExists { dir: PathBuf },
    /// `resume` was pointed at a store that is already complete.
    #[error("activation store at {} is already complete; nothing to resume", dir.display())]
    AlreadyComplete { dir: PathBuf },
    /// A shard file is damaged (truncated, bad header) or disagrees with the manifest.
    #[error("shard {} is damaged: {msg}", path.display())]
    BadShard { path: PathBuf, msg: String },
    /// An activation is NaN or infinite.
    #[error("non-finite activation ({value}) in shard {shard}, row {row} of the shard (store row {store_row}), column {col}")]
    NonFinite {
        shard: String,
        row: usize,
        store_row: u64,
        col: usize,
        value: f32,
    },
    /// Rows given to the writer do not match the store's spec.
    #[error("bad rows for the store: {0}")]
    BadRows(String),
    /// The requested split holds no rows.
    #[error("the {split} split of the store at {} holds no rows", dir.display())]
    EmptySplit { dir: PathBuf, split: &'static str },
    /// The background reader of a shuffled stream ended after reporting an error.
    #[error("the store's background reader stopped after an earlier error")]
    ReaderStopped,
}
