//! The harvester's typed errors.

use std::path::PathBuf;

/// Everything that can go wrong while harvesting: the model's own errors, the corpus, the stores.
#[derive(Debug, thiserror::Error)]
pub enum HarvestError {
    /// Resolving, loading or running the model failed.
    #[error(transparent)]
    Model(#[from] sae_lm::LmError),
    /// The corpus holds no document with any text.
    #[error("the corpus is empty: no .txt or .jsonl document with text under {paths}")]
    EmptyCorpus {
        /// The corpus paths given.
        paths: String,
    },
    /// A corpus file could not be read or parsed.
    #[error("corpus file {path}: {message}")]
    Corpus {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An input or option is invalid.
    #[error("{0}")]
    Invalid(String),
    /// Another process writes into the output folder (or its lock could not be taken).
    #[error(transparent)]
    Lock(#[from] sae_store::LockError),
    /// Writing or resuming an activation store failed.
    #[error(transparent)]
    Store(#[from] sae_store::StoreError),
    /// A tensor operation failed.
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Shorthand for the harvester's results.
pub type Result<T, E = HarvestError> = std::result::Result<T, E>;
