//! Synthetic superposition data with known ground-truth features.

pub mod bernoulli;
pub mod config;
pub mod error;
pub mod generate;
pub mod hierarchy;
pub mod probs;

pub use config::{SynthConfig, MAGNITUDE};
pub use error::SynthError;
pub use generate::{generate, true_features};
pub use hierarchy::HierarchySpec;
