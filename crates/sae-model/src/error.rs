//! Typed errors of the SAE model crate: loading, saving, encoding and evaluating.

use std::path::PathBuf;

/// Everything that can go wrong with an SAE.
#[derive(Debug, thiserror::Error)]
pub enum SaeError {
    /// A file system operation failed (reading, creating a folder, writing). The message already
    /// names the OS error, so it is not repeated as a source in error chains.
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    /// The folder does not exist.
    #[error("no SAE folder at {}", dir.display())]
    MissingDir { dir: PathBuf },
    /// A folder of several SAEs (one per hook) was given without saying which.
    #[error("{} holds one SAE per hook; choose one with --hook: {}", dir.display(), hooks.join(", "))]
    HookRequired { dir: PathBuf, hooks: Vec<String> },
    /// The hook asked for is not one of the folder's.
    #[error("{} has no SAE for hook {hook:?}; it has: {}", dir.display(), hooks.join(", "))]
    NoSuchHook {
        dir: PathBuf,
        hook: String,
        hooks: Vec<String>,
    },
    /// A transcoder predicts another hook's activations, so evaluating it needs that hook's store.
    #[error("the SAE is a {kind}: its output belongs to another hook, so evaluating it needs the target hook's store (row-aligned with the input store)")]
    NeedsTarget { kind: String },
    /// The target store does not line up with the input store or the transcoder's output.
    #[error("target store {}: {msg}", store.display())]
    BadTarget { store: PathBuf, msg: String },
    /// A file the format needs is absent.
    #[error("{} not found", path.display())]
    MissingFile { path: PathBuf },
    /// The folder holds neither a SAELens (`cfg.json` + `sae_weights.safetensors`) nor a sparsify
    /// (`cfg.json` + `sae.safetensors`) SAE.
    #[error("{} holds no SAE: expected cfg.json with sae_weights.safetensors (SAELens) or sae.safetensors (sparsify)", dir.display())]
    NotAnSae { dir: PathBuf },
    /// `cfg.json` could not be parsed or is inconsistent.
    #[error("bad SAE config {}: {msg}", path.display())]
    BadConfig { path: PathBuf, msg: String },
    /// The config names an architecture this crate cannot run.
    #[error("{}: unknown or unsupported SAE architecture {name:?} (supported: {})", path.display(), crate::saelens::SUPPORTED_ARCHITECTURES)]
    UnknownArchitecture { path: PathBuf, name: String },
    /// The config asks for an input normalization this crate cannot apply.
    #[error("{}: unsupported normalize_activations {name:?} (supported: none, expected_average_only_in, constant_norm_rescale, layer_norm)", path.display())]
    UnsupportedNormalization { path: PathBuf, name: String },
    /// A safetensors file could not be parsed.
    #[error("bad safetensors file {}: {msg}", path.display())]
    BadSafetensors { path: PathBuf, msg: String },
    /// A tensor the format needs is absent from a safetensors file.
    #[error("{}: tensor {name:?} not found", path.display())]
    MissingTensor { path: PathBuf, name: String },
    /// A tensor has the wrong shape.
    #[error("{}: tensor {name:?} has shape {found:?}, expected {expected:?}", path.display())]
    BadShape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// A tensor is stored in an element type this crate does not read.
    #[error("{}: tensor {name:?} has dtype {dtype}; expected F32, F16, BF16 or F64", path.display())]
    UnsupportedDtype {
        path: PathBuf,
        name: String,
        dtype: String,
    },
    /// A weight is NaN or infinite.
    #[error("{}: tensor {name:?} holds a non-finite value at flat index {index}", path.display())]
    NonFiniteWeight {
        path: PathBuf,
        name: String,
        index: usize,
    },
    /// The SAE's parameters are inconsistent (shapes disagree with the config, bad k).
    #[error("invalid SAE: {0}")]
    Invalid(String),
    /// An input to encode/decode has the wrong width.
    #[error("{what} has width {found}, the SAE expects {expected}")]
    InputWidth {
        what: &'static str,
        expected: usize,
        found: usize,
    },
    /// The store's row width differs from the SAE's d_in.
    #[error("the store at {} holds rows of width d = {store_d}, but the SAE has d_in = {sae_d_in}", store.display())]
    StoreWidth {
        store: PathBuf,
        store_d: usize,
        sae_d_in: usize,
    },
    /// The ground-truth features' width differs from the SAE's d_in.
    #[error("ground truth {} has features of width {found}, but the SAE has d_in = {expected}", path.display())]
    GroundTruthWidth {
        path: PathBuf,
        expected: usize,
        found: usize,
    },
    /// Reading the activation store failed.
    #[error(transparent)]
    Store(#[from] sae_store::StoreError),
    /// A tensor operation failed.
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

impl SaeError {
    /// A failed read of `path`: [`SaeError::MissingFile`] when it does not exist, else [`SaeError::Io`].
    pub fn reading(path: &std::path::Path, err: std::io::Error) -> SaeError {
        if err.kind() == std::io::ErrorKind::NotFound {
            SaeError::MissingFile {
                path: path.to_path_buf(),
            }
        } else {
            SaeError::Io {
                path: path.to_path_buf(),
                err,
            }
        }
    }
}
