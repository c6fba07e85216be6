//! A whole training run on an activation store: what to train ([`RunSpec`]), progress callbacks,
//! the summary. The run itself is a run of one member ([`crate::multi`], [`crate::member`]):
//! output-folder lock and checks, initialisation or resume, the step loop over seeded shuffled
//! batches, metrics.jsonl, periodic checkpoints, the saved SAE.

use std::path::PathBuf;

use crate::config::{Resolved, TrainConfig};
use crate::error::Result;
use crate::multi::{train_many, MemberStart, MultiObserver, MultiOptions};
use crate::trainer::{Backend, StepMetrics};

/// Metrics file (one JSON object per logged step) inside the SAE folder.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// The resolved config of the run, saved in the SAE folder.
pub const CONFIG_FILE: &str = "train_config.toml";

/// What to train, from where, to where.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// Activation store folder.
    pub store: PathBuf,
    /// A transcoder's target store (row-aligned with `store`); None for an autoencoder.
    pub target: Option<PathBuf>,
    /// Output SAE folder.
    pub out: PathBuf,
    /// Settings.
    pub cfg: TrainConfig,
    /// Continue the interrupted run in `out` from its checkpoint.
    pub resume: bool,
    /// Gradient implementation.
    pub backend: Backend,
}

/// Progress callbacks (the CLI draws a progress bar).
pub trait Observer {
    /// Called once before the first step; `start` > 0 when resuming.
    fn begin(&mut self, _total: u64, _start: u64, _res: &Resolved) {}
    /// Called after every step with the throughput since the (re)start.
    fn step(&mut self, _m: &StepMetrics, _rows_per_s: f64) {}
    /// Called with occasional notes (checkpoint written, SAE saved).
    fn note(&mut self, _msg: &str) {}
}

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// Metrics of the last step.
    pub last: Option<StepMetrics>,
    /// Steps run in this invocation.
    pub steps_run: u64,
    /// Wall-clock seconds of the step loop in this invocation.
    pub seconds: f64,
    /// Rows per second of the step loop (data reading included).
    pub rows_per_s: f64,
    /// Sizes used.
    pub res: Resolved,
}

impl RunSummary {
    /// The summary of a member that had finished before (nothing ran).
    pub fn skipped(res: Resolved) -> RunSummary {
        RunSummary {
            last: None,
            steps_run: 0,
            seconds: 0.0,
            rows_per_s: 0.0,
            res,
        }
    }
}

/// A single run's [`Observer`] seen as the observer of a run of one member.
struct Single<'a>(&'a mut dyn Observer);

impl MultiObserver for Single<'_> {
    fn begin(&mut self, members: &[MemberStart]) {
        if let Some(m) = members.first() {
            self.0.begin(m.total, m.start, &m.res);
        }
    }

    fn step(&mut self, _member: usize, m: &StepMetrics, rows_per_s: f64) {
        self.0.step(m, rows_per_s);
    }

    fn note(&mut self, msg: &str) {
        self.0.note(msg);
    }
}

/// Trains (or resumes) the run described by `spec`, saving the SAE into `spec.out` (locked while
/// it runs: a second process writing there is refused).
pub fn train(spec: &RunSpec, obs: &mut dyn Observer) -> Result<RunSummary> {
    let specs = std::slice::from_ref(spec);
    let mut summary = train_many(specs, &MultiOptions::default(), &mut Single(obs))?;
    Ok(summary.members.remove(0))
}
