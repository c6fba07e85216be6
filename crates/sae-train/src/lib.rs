//! SAE trainer: TopK, BatchTopK, ReLU-L1 and JumpReLU recipes, Adam, checkpoints and resume.
