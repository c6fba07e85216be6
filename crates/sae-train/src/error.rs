//! Typed errors of the trainer.

use std::path::PathBuf;

/// Everything that can stop a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The configuration file could not be parsed (unknown key, wrong type, bad TOML).
    #[error("bad training config: {0}")]
    Config(String),
    /// A configuration value is out of range (e.g. k larger than the dictionary).
    #[error("invalid training setting: {0}")]
    Invalid(String),
    /// Reading the activation store failed (missing, truncated, NaN/Inf rows).
    #[error(transparent)]
    Store(#[from] sae_store::StoreError),
    /// Building or saving the SAE failed.
    #[error(transparent)]
    Model(#[from] sae_model::SaeError),
    /// A tensor operation failed.
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
    /// A file in the output folder could not be read or written.
    #[error("{}: {err}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating-system error.
        err: std::io::Error,
    },
    /// The checkpoint is missing, damaged or belongs to a different run.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The output folder is locked by another process (or its lock file is damaged).
    #[error(transparent)]
    Lock(#[from] sae_store::LockError),
    /// A run of several SAEs failed in one of them.
    #[error("{}: {err}", out.display())]
    InMember {
        /// The output folder of the SAE that failed.
        out: PathBuf,
        /// What went wrong.
        err: Box<TrainError>,
    },
    /// A batch source other than a store (a live stream) failed.
    #[error(transparent)]
    Source(Box<dyn std::error::Error + Send + Sync>),
    /// Training diverged (the loss became NaN or infinite).
    #[error("training diverged at step {step}: loss is {loss}")]
    Diverged {
        /// The step whose loss was not finite.
        step: u64,
        /// The loss value.
        loss: f64,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, TrainError>;

/// Wraps an io error with the path it concerns.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
    let path = path.into();
    move |err| TrainError::Io { path, err }
}
