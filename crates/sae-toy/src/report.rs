//! `sae toy` as a whole: the config (TOML, every field optional), running the chosen
//! experiments and the SAE probe, and the JSON report.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Result, ToyError};
use crate::experiments::dims::{run_dims, DimsConfig, DimsResult};
use crate::experiments::intro::{run_intro, IntroConfig, ModelResult};
use crate::experiments::phase::{run_phase, PhaseCell, PhaseConfig};
use crate::experiments::probe::{run_probe, ProbeConfig, ProbeResult};
use crate::train::TrainSettings;
use crate::Progress;

/// File name of the JSON report inside the output folder.
pub const REPORT_JSON: &str = "toy.json";
/// `format` field of the report.
pub const REPORT_FORMAT: &str = "sae-toy-report";
/// Layout version of the report.
pub const REPORT_VERSION: u32 = 1;

/// One of the paper's experiments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Experiment {
    /// n = 20, m = 5: superposition as sparsity grows (with the SAE probe).
    Intro,
    /// n = 2, m = 1: the phase diagram.
    Phase,
    /// n = 200, m = 20: feature dimensionality.
    Dimensionality,
}

/// Everything `sae toy` runs (`configs/toy.toml`); absent fields take the paper's values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToyConfig {
    /// Experiments to run, in this order.
    pub experiments: Vec<Experiment>,
    /// Optimiser recipe shared by every experiment.
    pub train: TrainSettings,
    /// Experiment 1.
    pub intro: IntroConfig,
    /// Experiment 2.
    pub phase: PhaseConfig,
    /// Experiment 3.
    pub dimensionality: DimsConfig,
    /// The SAE trained on experiment 1's hidden layers (`enabled = false` skips it).
    pub sae: ProbeConfig,
}

impl Default for ToyConfig {
    fn default() -> Self {
        ToyConfig {
            experiments: vec![
                Experiment::Intro,
                Experiment::Phase,
                Experiment::Dimensionality,
            ],
            train: TrainSettings::default(),
            intro: IntroConfig::default(),
            phase: PhaseConfig::default(),
            dimensionality: DimsConfig::default(),
            sae: ProbeConfig::default(),
        }
    }
}

impl ToyConfig {
    /// Checks the ranges that can be checked before training.
    pub fn validate(&self) -> Result<()> {
        self.train.validate()?;
        let bad = |m: String| Err(ToyError::Invalid(m));
        for s in &self.intro.sparsities {
            if !(0.0..1.0).contains(s) {
                return bad(format!("intro: sparsity must be in [0, 1), got {s}"));
            }
        }
        for v in &self.dimensionality.inverse_densities {
            if !(v.is_finite() && *v >= 1.0) {
                return bad(format!("dimensionality: 1/(1-S) must be >= 1, got {v}"));
            }
        }
        for d in &self.phase.densities {
            if !(*d > 0.0 && *d <= 1.0) {
                return bad(format!("phase: density must be in (0, 1], got {d}"));
            }
        }
        if self.sae.enabled
            && (self.sae.rows < 2 || !(self.sae.eval_frac > 0.0 && self.sae.eval_frac < 1.0))
        {
            return bad("sae: rows must be >= 2 and eval_frac in (0, 1)".into());
        }
        Ok(())
    }

    /// Parses a TOML config; an unknown key is an error naming it and its line.
    pub fn from_toml(text: &str) -> Result<ToyConfig> {
        toml::from_str(text).map_err(|e| {
            let msg = e.message().trim().replace('\n', " ");
            match e.span() {
                Some(span) => {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    ToyError::Config(format!("line {line}: {msg}"))
                }
                None => ToyError::Config(msg),
            }
        })
    }
}

/// Experiment 1 with its SAE probes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntroReport {
    /// Features n.
    pub features: usize,
    /// Hidden dimensions m.
    pub hidden: usize,
    /// Importance decay r.
    pub importance_decay: f64,
    /// One per model.
    pub models: Vec<ModelResult>,
    /// The SAE on the hidden layer of the sparse instances.
    pub sae: Vec<ProbeResult>,
}

/// `toy.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToyReport {
    /// Always [`REPORT_FORMAT`].
    pub format: String,
    /// [`REPORT_VERSION`].
    pub version: u32,
    /// The settings that produced it.
    pub config: ToyConfig,
    /// Experiment 1.
    pub intro: Option<IntroReport>,
    /// Experiment 2: one cell per (density, relative importance).
    pub phase: Option<Vec<PhaseCell>>,
    /// Experiment 3.
    pub dimensionality: Option<DimsResult>,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
}

/// Runs the experiments of `cfg`; SAE stores and folders go under `work/sae/`.
pub fn run(cfg: &ToyConfig, work: &Path, progress: &mut dyn Progress) -> Result<ToyReport> {
    let t0 = Instant::now();
    cfg.validate()?;
    let mut report = ToyReport {
        format: REPORT_FORMAT.into(),
        version: REPORT_VERSION,
        config: cfg.clone(),
        intro: None,
        phase: None,
        dimensionality: None,
        seconds: 0.0,
    };
    for e in &cfg.experiments {
        match e {
            Experiment::Intro => report.intro = Some(intro_with_probes(cfg, work, progress)?),
            Experiment::Phase => report.phase = Some(run_phase(&cfg.phase, &cfg.train, progress)?),
            Experiment::Dimensionality => {
                report.dimensionality = Some(run_dims(&cfg.dimensionality, &cfg.train, progress)?)
            }
        }
    }
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}

fn intro_with_probes(
    cfg: &ToyConfig,
    work: &Path,
    progress: &mut dyn Progress,
) -> Result<IntroReport> {
    let models = run_intro(&cfg.intro, &cfg.train, progress)?;
    let mut sae = Vec::new();
    for r in models
        .iter()
        .filter(|r| cfg.sae.enabled && cfg.sae.models.contains(&r.kind))
    {
        let Some(model) = &r.model else { continue };
        for (k, inst) in model.instances.iter().enumerate() {
            if inst.sparsity + 1e-12 < cfg.sae.min_sparsity
                || r.instances[k].geometry.represented == 0
            {
                continue;
            }
            progress.begin(&format!("SAE on {} S={}", r.kind.name(), inst.sparsity), 1);
            let dir = work
                .join("sae")
                .join(format!("{}-S{}", r.kind.name(), inst.sparsity));
            if dir.exists() {
                return Err(ToyError::Invalid(format!(
                    "{} already exists; choose another output folder",
                    dir.display()
                )));
            }
            sae.push(run_probe(model, k, &cfg.sae, cfg.train.seed, &dir)?);
            progress.end();
        }
    }
    Ok(IntroReport {
        features: cfg.intro.features,
        hidden: cfg.intro.hidden,
        importance_decay: cfg.intro.importance_decay,
        models,
        sae,
    })
}
