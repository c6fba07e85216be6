//! Synthetic superposition data with known ground-truth features.
