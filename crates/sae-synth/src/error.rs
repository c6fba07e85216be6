//! Typed errors of the synthetic data generator.

/// Everything that can go wrong generating a synthetic store.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A generator parameter is out of range.
    #[error("invalid synth setting: {0}")]
    Invalid(String),
    /// `resume` found a store made with different parameters.
    #[error("the incomplete store at {dir} was made with different generator settings; choose another folder")]
    ResumeMismatch { dir: String },
    /// Writing the store or the ground truth failed.
    #[error(transparent)]
    Store(#[from] sae_store::StoreError),
    /// Serializing the ground truth failed.
    #[error("cannot serialize the ground truth: {0}")]
    Safetensors(#[from] safetensors::SafeTensorError),
}
