//! SAE trainer: TopK, BatchTopK, ReLU-L1 and JumpReLU recipes, Adam, checkpoints and resume.
//! It knows activation rows only (no transformers, no tokenizers): batches come from a [`BatchSource`]
//! (an activation store, or a live stream the caller wires in).

pub mod adam;
pub mod autograd;
pub mod checkpoint;
pub mod config;
pub mod dead;
pub mod dense_step;
pub mod error;
pub mod export;
pub mod geomedian;
pub mod kernels;
mod member;
pub mod multi;
pub mod optim;
mod pair;
pub mod params;
pub mod run;
pub mod schedule;
pub mod select;
mod source;
pub mod sparse;
pub mod step;
pub mod sweep;
pub mod trainer;
mod transcoder;
mod vecops;

pub use config::{ArchConfig, ArchKind, Prefixes, Resolved, TrainConfig};
pub use error::{Result, TrainError};
pub use multi::{
    train_from, train_many, MemberStart, MultiObserver, MultiOptions, MultiSummary, StreamSummary,
};
pub use pair::check_aligned;
pub use params::Params;
pub use run::{train, Observer, RunSpec, RunSummary};
pub use source::{BatchSource, DataInfo, Sources, StoreSources};
pub use step::{Grads, Step, StepContext, StepOutput};
pub use sweep::{hook_stores, plan, SweepConfig, SweepEntry};
pub use trainer::{Backend, StepMetrics, TrainState, Trainer};
