//! Typed errors of report building and reading.

use std::path::PathBuf;

/// Everything that can go wrong building or reading a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Reading the activation store failed.
    #[error(transparent)]
    Store(#[from] sae_store::StoreError),
    /// Encoding with the SAE failed.
    #[error(transparent)]
    Sae(#[from] sae_model::SaeError),
    /// The SAE's input width differs from the store's row width.
    #[error("the SAE takes d_in = {sae_d} but the store {} holds rows of d = {store_d}", store.display())]
    WidthMismatch {
        sae_d: usize,
        store_d: usize,
        store: PathBuf,
    },
    /// The SAE and a store (or two stores) come from different models or hook points.
    #[error("{0}")]
    SourceMismatch(String),
    /// The store has no token ids, which contexts and explanations need.
    #[error("the store {} has no token ids; a report needs them (harvest with `sae harvest`, which stores them)", store.display())]
    NoTokenIds { store: PathBuf },
    /// No tokenizer could be found to turn token ids into text.
    #[error("no tokenizer: {0}")]
    MissingTokenizer(String),
    /// A tokenizer file could not be loaded.
    #[error("cannot load tokenizer {}: {msg}", path.display())]
    BadTokenizer { path: PathBuf, msg: String },
    /// The store (or the first `max_rows` of it) holds no rows.
    #[error("the store {} holds no rows to report on", store.display())]
    Empty { store: PathBuf },
    /// The logit lens failed.
    #[error("logit lens: {0}")]
    LogitLens(String),
    /// `report.json` is missing, unreadable or of another version.
    #[error("bad report {}: {msg}", path.display())]
    BadReport { path: PathBuf, msg: String },
    /// A side file of the SAE folder (metrics.jsonl, eval_spliced.json) does not parse.
    #[error("cannot read {}: {msg}", path.display())]
    BadSideFile { path: PathBuf, msg: String },
    /// A latent id outside the report.
    #[error("latent {id} is out of range: the report has {count} latents (0..{count})")]
    NoSuchUnit { id: usize, count: usize },
    /// The settings ask for the untrained control but no untrained SAE was given.
    #[error("the untrained control needs an untrained SAE of the same shape (none was given)")]
    NoUntrainedSae,
    /// A target store was given for an SAE that is not a transcoder.
    #[error("the target store {} is for transcoders, but the SAE is a {kind}: it reconstructs its own input, so its figures compare with the input store (leave out --target-store)", store.display())]
    TargetForAutoencoder { kind: String, store: PathBuf },
    /// The target store's rows are not of the transcoder's output width.
    #[error("the transcoder's output has width d_out = {d_out} but the target store {} holds rows of d = {store_d}", store.display())]
    TargetWidth {
        d_out: usize,
        store_d: usize,
        store: PathBuf,
    },
    /// The untrained control was asked for a transcoder.
    #[error("--control untrained is not supported for transcoders (its initialisation needs paired input and target rows); use --control random")]
    UntrainedTranscoder,
    /// Tensor arithmetic failed.
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
}
