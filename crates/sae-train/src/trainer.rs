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
use crate::params::{Params, TranscoderInit};
use crate::schedule::{lr_at, warmup_coef};
use crate::sparse::{SparseThresholdStep, SparseTopKStep};
use crate::step::{Grads, Step, StepContext};
use crate::transcoder::{check, norm_scale, split_rows};

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
    /// A transcoder's target scale (it predicts c_out * y); equal to `scale` for an autoencoder.
    pub target_scale: f32,
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
    /// A transcoder's batch split into its input and target rows.
    xy: (Vec<f32>, Vec<f32>),
}

impl Trainer {
    /// Initialises a fresh run from `sample` ([n, d_in] raw rows; `[x | y]` rows for a transcoder):
    /// input scale c with E||c x|| = sqrt(d_in), b_dec = geometric median of the scaled sample
    /// (a transcoder: of its scaled targets, each side scaled on its own), random unit decoder
    /// rows, W_enc = W_dec^T (a transcoder: random unit encoder columns), b_enc = 0.
    pub fn new(cfg: TrainConfig, res: Resolved, sample: &[f32], backend: Backend) -> Result<Self> {
        check(&cfg, &res)?;
        let d = res.d_in;
        let n = sample.len() / (d + res.d_out.unwrap_or(0));
        if n == 0 {
            return Err(TrainError::Invalid("no rows to initialise from".into()));
        }
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        let (x, y, d_out) = match res.d_out {
            Some(d_out) => {
                split_rows(sample, d, d_out, &mut xs, &mut ys);
                (&xs[..], &ys[..], d_out)
            }
            None => (sample, sample, d),
        };
        let scale = norm_scale(x, d, cfg.normalize_inputs);
        let target_scale = match res.d_out {
            Some(_) => norm_scale(y, d_out, cfg.normalize_inputs),
            None => scale,
        };
        let scaled: Vec<f32> = y.iter().map(|v| v * target_scale).collect();
        let b_dec = geometric_median(&scaled, d_out, cfg.geomedian_iters);
        let (dec_norm, log_thr) = match &cfg.arch {
            // Anthropic: decoder columns start at norm 0.1 and are free afterwards.
            ArchConfig::ReluL1 { .. } => (0.1, None),
            ArchConfig::JumpRelu { init_threshold, .. } => {
                (1.0, Some((*init_threshold as f32).ln()))
            }
            _ => (1.0, None),
        };
        let params = match res.d_out {
            Some(_) => {
                let init = TranscoderInit {
                    dec_norm,
                    log_threshold: log_thr,
                    skip: cfg.skip,
                };
                Params::init_transcoder(d, res.d_sae, b_dec, init, cfg.seed)
            }
            None => Params::init(d, res.d_sae, b_dec, dec_norm, log_thr, cfg.seed),
        };
        let adam = Adam::new(adam_cfg(&cfg), &params);
        let state = TrainState {
            params,
            adam,
            dead: DeadTracker::new(res.d_sae, res.dead_tokens),
            step: 0,
            scale,
            target_scale,
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
            xy: (Vec::new(), Vec::new()),
        }
    }

    /// First step of the density window (the last `dead_tokens` tokens of training).
    fn density_start(&self) -> u64 {
        let window_steps = self.res.dead_tokens.div_ceil(self.cfg.batch as u64);
        self.cfg.steps.saturating_sub(window_steps)
    }

    /// Runs one optimisation step on `batch` ([batch, d_in] raw rows, `[x | y]` rows for a
    /// transcoder; scaled in place).
    pub fn step(&mut self, batch: &mut [f32]) -> Result<StepMetrics> {
        let rows = (batch.len() / (self.res.d_in + self.res.d_out.unwrap_or(0))) as u64;
        let s = self.state.step;
        if s == self.density_start() {
            self.state.dead.reset_density();
        }
        let c = self.state.scale;
        let (xb, yb) = &mut self.xy;
        let (x, target): (&[f32], Option<&[f32]>) = match self.res.d_out {
            Some(d_out) => {
                split_rows(batch, self.res.d_in, d_out, xb, yb);
                let ct = self.state.target_scale;
                xb.iter_mut().for_each(|v| *v *= c);
                yb.iter_mut().for_each(|v| *v *= ct);
                (xb, Some(yb))
            }
            None => {
                if c != 1.0 {
                    batch.iter_mut().for_each(|v| *v *= c);
                }
                (batch, None)
            }
        };
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
        let prefix_weights = self
            .cfg
            .arch
            .prefix_schedule()
            .and_then(|p| p.weights_at(s, self.cfg.steps));
        let dead = self.state.dead.dead_mask();
        let ctx = StepContext {
            dead: &dead,
            sparsity_coef,
            target,
            prefix_weights: prefix_weights.as_deref(),
        };
        let out = self
            .step_impl
            .run(x, &self.state.params, &ctx, &mut self.grads)?;
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
