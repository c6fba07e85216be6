//! The spliced evaluation's typed errors.

/// What can go wrong when splicing an SAE into a model.
#[derive(Debug, thiserror::Error)]
pub enum SpliceError {
    /// The model failed (loading, tokenizing, the forward pass, or the SAE inside a splice).
    #[error(transparent)]
    Model(#[from] sae_lm::LmError),
    /// Reading the corpus failed.
    #[error(transparent)]
    Harvest(#[from] sae_harvest::HarvestError),
    /// The SAE failed outside the forward pass.
    #[error(transparent)]
    Sae(#[from] sae_model::SaeError),
    /// The SAE does not fit the model, or an option is invalid.
    #[error("{0}")]
    Invalid(String),
}

/// Shorthand for this crate's results.
pub type Result<T, E = SpliceError> = std::result::Result<T, E>;
