//! The sparse autoencoder: architectures, encode/decode, SAELens and sparsify formats, evaluation metrics.
