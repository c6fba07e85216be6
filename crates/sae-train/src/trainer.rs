//! The trainer's state machine: initialisation from a data sample, one optimisation step at a time
//! (scale, forward/backward, decoder-gradient projection, Adam, renormalisation, dead-latent and
//! threshold bookkeeping), and the final inference SAE with the input scale folded in.

use crate::adam::{Adam, AdamConfig};
use crate::autograd::AutogradStep;
use crate::config::{ArchConfig, Resolved, TrainConfig};
use crate::dead::DeadTracker;
use crate::error::{Result, TrainError};
use crate::geomedian::geometric_median;
use crate::optim::update;
use crate::params::Params;
use crate::schedule::{lr_at, warmup_coef};
use crate::sparse::{SparseThresholdStep, SparseTopKStep};
use crate::step::{Grads, Step, StepContext};

/// Everything that changes during training (what a checkpoint holds).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState {
    /// Parameters in scaled-input space.
    pub params: Params,
    /// Optimizer state.
    pub adam: Adam,
    /// Dead-latent and density counters.
    pub dead: DeadTracker,
    /// Steps completed (= batches consumed from the shuffled stream).
    pub step: u64,
    /// Input scale c (the model sees c * x).
    pub scale: f32,
    /// BatchTopK inference threshold (EMA of the smallest kept activation; 0 before the first step).
    pub threshold: f32,
}

/// Metrics of one step (one line of metrics.jsonl).
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepMetrics {
    /// Steps completed, counting this one.
    pub step: u64,
    /// Total loss.
    pub loss: f64,
    /// Reconstruction term.
    pub recon: f64,
    /// AuxK loss or sparsity penalty.
    pub aux: f64,
    /// Fraction of variance unexplained on the batch.
    pub fvu: f64,
    /// Mean active latents per row.
    pub l0: f64,
    /// Fraction of dead latents.
    pub dead_frac: f64,
    /// Learning rate used.
    pub lr: f64,
    /// BatchTopK inference threshold (scaled units), when relevant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f32>,
}

/// Which step implementation computes the gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// candle autograd (reference, all architectures).
    Autograd,
    /// Hand-derived backward: sparse for the TopK family; for ReLU-L1 and JumpReLU sparse once few
    /// latents fire, dense gemm before.
    Fast,
}

/// A training run in memory.
pub struct Trainer {
    /// The configuration.
    pub cfg: TrainConfig,
    /// Sizes resolved from the data.
    pub res: Resolved,
    /// The mutable state.
    pub state: TrainState,
    step_impl: Box<dyn Step + Send>,
    /// Gradient buffers, allocated once and overwritten by every step.
    grads: Grads,
}

impl Trainer {
    /// Initialises a fresh run from `sample` ([n, d_in] raw rows): input scale c with
    /// E||c x|| = sqrt(d_in), b_dec = geometric median of the scaled sample, random unit decoder rows,
    /// W_enc = W_dec^T, b_enc = 0.
    pub fn new(cfg: TrainConfig, res: Resolved, sample: &[f32], backend: Backend) -> Result<Self> {
        let d = res.d_in;
        let n = sample.len() / d;
        if n == 0 {
            return Err(TrainError::Invalid("no rows to initialise from".into()));
        }
        let scale = if cfg.normalize_inputs {
            let mean_norm = sample
                .chunks(d)
                .map(|r| r.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt())
                .sum::<f64>()
                / n as f64;
            if mean_norm > 0.0 {
                ((d as f64).sqrt() / mean_norm) as f32
            } else {
                1.0
            }
        } else {
            1.0
        };
        let scaled: Vec<f32> = sample.iter().map(|v| v * scale).collect();
        let b_dec = geometric_median(&scaled, d, cfg.geomedian_iters);
        let (dec_norm, log_thr) = match &cfg.arch {
            // Anthropic: decoder columns start at norm 0.1 and are free afterwards.
            ArchConfig::ReluL1 { .. } => (0.1, None),
            ArchConfig::JumpRelu { init_threshold, .. } => {
                (1.0, Some((*init_threshold as f32).ln()))
            }
            _ => (1.0, None),
        };
        let params = Params::init(d, res.d_sae, b_dec, dec_norm, log_thr, cfg.seed);
        let adam = Adam::new(adam_cfg(&cfg), &params);
        let state = TrainState {
            params,
            adam,
            dead: DeadTracker::new(res.d_sae, res.dead_tokens),
            step: 0,
            scale,
            threshold: 0.0,
        };
        Ok(Self::from_state(cfg, res, state, backend))
    }

    /// Continues from a saved state.
    pub fn from_state(
        cfg: TrainConfig,
        res: Resolved,
        state: TrainState,
        backend: Backend,
    ) -> Self {
        let step_impl: Box<dyn Step + Send> = match (&cfg.arch, backend) {
            (arch, Backend::Fast) if arch.topk_family().is_some() => {
                Box::new(SparseTopKStep::new(cfg.arch.clone(), res.k_aux))
            }
            (_, Backend::Fast) => Box::new(SparseThresholdStep::new(cfg.arch.clone())),
            _ => Box::new(AutogradStep {
                arch: cfg.arch.clone(),
                k_aux: res.k_aux,
            }),
        };
        let grads = Grads::zeros_for(&state.params);
        Trainer {
            cfg,
            res,
            state,
            step_impl,
            grads,
        }
    }

    /// First step of the density window (the last `dead_tokens` tokens of training).
    fn density_start(&self) -> u64 {
        let window_steps = self.res.dead_tokens.div_ceil(self.cfg.batch as u64);
        self.cfg.steps.saturating_sub(window_steps)
    }

    /// Runs one optimisation step on `batch` ([batch, d_in] raw rows; scaled in place).
    pub fn step(&mut self, batch: &mut [f32]) -> Result<StepMetrics> {
        let rows = (batch.len() / self.res.d_in) as u64;
        let s = self.state.step;
        if s == self.density_start() {
            self.state.dead.reset_density();
        }
        let c = self.state.scale;
        if c != 1.0 {
            batch.iter_mut().for_each(|v| *v *= c);
        }
        let sparsity_coef = match &self.cfg.arch {
            ArchConfig::ReluL1 {
                l1_coef,
                l1_warmup_frac,
            } => warmup_coef(s, self.cfg.steps, *l1_coef, *l1_warmup_frac),
            ArchConfig::JumpRelu {
                l0_coef,
                l0_warmup_frac,
                ..
            } => warmup_coef(s, self.cfg.steps, *l0_coef, *l0_warmup_frac),
            _ => 0.0,
        };
        let dead = self.state.dead.dead_mask();
        let ctx = StepContext {
            dead: &dead,
            sparsity_coef,
        };
        let out = self
            .step_impl
            .run(batch, &self.state.params, &ctx, &mut self.grads)?;
        if !out.loss.is_finite() {
            return Err(TrainError::Diverged {
                step: s + 1,
                loss: out.loss,
            });
        }
        let lr = lr_at(
            s,
            self.cfg.steps,
            self.cfg.lr,
            self.cfg.lr_warmup_frac,
            self.cfg.lr_decay_frac,
        );
        update(
            &mut self.state.params,
            &self.grads,
            &mut self.state.adam,
            lr,
            self.cfg.arch.unit_decoder(),
        );
        self.state.dead.update(&out.fired, rows);
        let mut threshold = None;
        if let ArchConfig::BatchTopK { threshold_ema, .. }
        | ArchConfig::MatryoshkaBatchTopK { threshold_ema, .. } = &self.cfg.arch
        {
            if let Some(m) = out.min_kept {
                let t = &mut self.state.threshold;
                *t = if *t == 0.0 {
                    m
                } else {
                    (*threshold_ema as f32) * *t + (1.0 - *threshold_ema as f32) * m
                };
            }
            threshold = Some(self.state.threshold);
        }
        self.state.step += 1;
        Ok(StepMetrics {
            step: self.state.step,
            loss: out.loss,
            recon: out.recon,
            aux: out.aux,
            fvu: out.fvu,
            l0: out.l0,
            dead_frac: self.state.dead.dead_frac(),
            lr,
            threshold,
        })
    }

    /// True once every configured step has run.
    pub fn done(&self) -> bool {
        self.state.step >= self.cfg.steps
    }
}

/// Adam settings from the config.
pub fn adam_cfg(cfg: &TrainConfig) -> AdamConfig {
    AdamConfig {
        beta1: cfg.adam_beta1,
        beta2: cfg.adam_beta2,
        eps: cfg.adam_eps,
    }
}
