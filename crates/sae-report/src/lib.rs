//! Reports: per-latent statistics, top contexts, explanations, neuron comparison, HTML dashboard.
