//! Typed errors of the toy-model crate.

use std::path::PathBuf;

/// What can go wrong training, measuring or writing toy models.
#[derive(Debug, thiserror::Error)]
pub enum ToyError {
    /// A setting is out of range (names the setting and the value).
    #[error("{0}")]
    Invalid(String),
    /// The TOML config could not be parsed (names the line and the key).
    #[error("config: {0}")]
    Config(String),
    /// A tensor operation failed.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// Writing the activation store failed.
    #[error(transparent)]
    Store(#[from] sae_store::StoreError),
    /// Training the SAE failed.
    #[error("training the SAE: {0}")]
    Train(#[from] sae_train::TrainError),
    /// Loading or evaluating the SAE failed.
    #[error("evaluating the SAE: {0}")]
    Sae(#[from] sae_model::SaeError),
    /// Serialising the ground truth failed.
    #[error("safetensors: {0}")]
    Safetensors(#[from] safetensors::SafeTensorError),
    /// A file or folder could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Shorthand result.
pub type Result<T> = std::result::Result<T, ToyError>;

/// Maps an I/O error to [`ToyError::Io`] naming `path`.
pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ToyError + '_ {
    move |source| ToyError::Io {
        path: path.to_path_buf(),
        source,
    }
}
