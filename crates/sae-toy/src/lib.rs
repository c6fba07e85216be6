//! Toy models of superposition (Elhage et al. 2022): the ReLU-output, linear-output and
//! hidden-ReLU models trained with candle (many instances in one batched model), the paper's
//! measurements (||W_i||, superposition, D_i, D*, features per neuron, kurtosis), its three
//! experiments, and our SAE trained on the hidden layer against the known feature directions.

mod autograd;
mod error;
mod experiments;
mod fast;
mod kernels;
mod measure;
mod model;
mod neurons;
mod output;
mod plots;
mod report;
mod rng;
mod svg;
mod train;

pub use autograd::{autograd_grads, batched_losses};
pub use error::{Result, ToyError};
pub use experiments::dims::{
    dim_histogram, plateau, run_dims, DimsConfig, DimsLevel, DimsResult, DIM_BIN, PLATEAU_TOL,
};
pub use experiments::intro::{
    mean_alive, neuron_stats, run_intro, InstanceResult, IntroConfig, ModelResult,
};
pub use experiments::phase::{classify, logspace, run_phase, PhaseCell, PhaseConfig, Region};
pub use experiments::probe::{run_probe, ProbeConfig, ProbeResult};
pub use fast::Grads;
pub use measure::{geometry, gram, Geometry, REPRESENTED_NORM};
pub use model::{Instance, ModelKind, ToyModel};
pub use neurons::{
    count_kurtosis, features_per_unit, kurtosis, pearson, spearman, CountKurtosis, UnitStats,
    DRIVE_FRAC,
};
pub use output::{figures, page, write_outputs, PAGE_FILE, PLOTS_DIR};
pub use plots::Figure;
pub use report::{
    run, Experiment, IntroReport, ToyConfig, ToyReport, REPORT_FORMAT, REPORT_JSON, REPORT_VERSION,
};
pub use rng::{fill_features, mix, Rng};
pub use train::{fast_grads, init, sample_batch, train, TrainSettings, Trained};

/// Progress of the training runs (the CLI draws a bar).
pub trait Progress {
    /// A run of `total` steps named `label` starts.
    fn begin(&mut self, _label: &str, _total: u64) {}
    /// After each step, with the summed loss of all instances.
    fn step(&mut self, _step: u64, _loss: f64) {}
    /// The run finished.
    fn end(&mut self) {}
}

/// No progress output.
pub struct NoProgress;
impl Progress for NoProgress {}
