//! Errors of attribution: bad input named once, model and SAE errors passed through.

/// What can go wrong in attribution.
#[derive(Debug, thiserror::Error)]
pub enum CircuitError {
    /// The model failed (bad hook name, bad shapes).
    #[error(transparent)]
    Lm(#[from] sae_lm::LmError),
    /// The SAE failed.
    #[error(transparent)]
    Sae(#[from] sae_model::SaeError),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A next-token target asked of an encoder.
    #[error("{arch} is an encoder, not a causal language model: it has no next-token target (logit, logit difference or loss)")]
    NotCausal {
        /// The model's architecture.
        arch: &'static str,
    },
    /// A prompt longer than the model's context.
    #[error("the prompt has {tokens} tokens, longer than the model's context of {max_ctx}")]
    PromptTooLong {
        /// Tokens in the prompt.
        tokens: usize,
        /// The model's context.
        max_ctx: usize,
    },
    /// An SAE whose architecture attribution does not handle.
    #[error("the SAE at {hook} cannot be attributed through: {reason}")]
    UnsupportedSae {
        /// Its hook.
        hook: String,
        /// Why.
        reason: String,
    },
    /// Anything else the caller got wrong.
    #[error("{0}")]
    Invalid(String),
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, CircuitError>;
