//! The training configuration (TOML, serde): architecture as a tagged enum, every default in [`defaults`].

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

pub mod defaults;
mod matryoshka;

pub use matryoshka::{PrefixSchedule, Prefixes};

/// The SAE architecture and its sparsity control.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ArchConfig {
    /// TopK (Gao et al. 2024): keep the k largest pre-activations of each row; AuxK on dead latents.
    #[serde(rename = "topk")]
    TopK {
        /// Active latents per row.
        k: usize,
        /// AuxK loss coefficient.
        #[serde(default = "auxk_coef")]
        auxk_coef: f64,
        /// Latents used by AuxK; default min(max(d_in / 2, 1), 256, d_sae).
        #[serde(default)]
        k_aux: Option<usize>,
    },
    /// BatchTopK (Bussmann et al. 2024): keep the k * batch largest activations of the whole batch.
    #[serde(rename = "batchtopk")]
    BatchTopK {
        /// Average active latents per row.
        k: usize,
        /// AuxK loss coefficient.
        #[serde(default = "auxk_coef")]
        auxk_coef: f64,
        /// Latents used by AuxK; default min(256, d_sae).
        #[serde(default)]
        k_aux: Option<usize>,
        /// EMA decay of the inference threshold (the batch's smallest kept activation).
        #[serde(default = "threshold_ema")]
        threshold_ema: f64,
    },
    /// Matryoshka BatchTopK (Bussmann et al. 2025; Nabeshima 2025): BatchTopK whose nested
    /// prefixes of the dictionary also reconstruct the input on their own.
    #[serde(rename = "matryoshka-batchtopk")]
    MatryoshkaBatchTopK {
        /// Average active latents per row.
        k: usize,
        /// AuxK loss coefficient.
        #[serde(default = "auxk_coef")]
        auxk_coef: f64,
        /// Latents used by AuxK; default min(256, d_sae).
        #[serde(default)]
        k_aux: Option<usize>,
        /// EMA decay of the inference threshold.
        #[serde(default = "threshold_ema")]
        threshold_ema: f64,
        /// Share of the dictionary in each nested group, innermost first (they sum to 1).
        #[serde(default = "group_fractions")]
        group_fractions: Vec<f64>,
        /// Loss weight of each inner prefix (one per group but the last; default 1 each).
        #[serde(default)]
        group_weights: Option<Vec<f64>>,
        /// The inner weights' ramp: `group_weights` until `weight_ramp[0]` of the steps, then
        /// linearly down (or up) to `group_weights` times this by `weight_ramp[1]` (1: no ramp).
        #[serde(default = "final_weight_scale")]
        final_weight_scale: f64,
        /// Start and end of the weight ramp, as fractions of the steps.
        #[serde(default = "weight_ramp")]
        weight_ramp: [f64; 2],
    },
    /// ReLU with an L1 penalty weighted by decoder-row norms (Anthropic, April 2024).
    ReluL1 {
        /// Sparsity coefficient lambda.
        #[serde(default = "l1_coef")]
        l1_coef: f64,
        /// Fraction of the steps over which lambda warms up from 0.
        #[serde(default = "l1_warmup_frac")]
        l1_warmup_frac: f64,
    },
    /// JumpReLU (Rajamanoharan et al. 2024, Gemma Scope): per-latent thresholds trained with a
    /// straight-through estimator (rectangle kernel) and an L0 penalty.
    #[serde(rename = "jumprelu")]
    JumpRelu {
        /// L0 penalty coefficient.
        #[serde(default = "l0_coef")]
        l0_coef: f64,
        /// When set, the penalty is l0_coef * (L0 / target_l0 - 1)^2 instead of l0_coef * L0.
        #[serde(default)]
        target_l0: Option<f64>,
        /// Fraction of the steps over which the L0 coefficient warms up linearly from 0.
        #[serde(default = "l0_warmup_frac")]
        l0_warmup_frac: f64,
        /// Straight-through bandwidth epsilon.
        #[serde(default = "bandwidth")]
        bandwidth: f64,
        /// Initial threshold of every latent.
        #[serde(default = "init_threshold")]
        init_threshold: f64,
        /// The straight-through estimator also reaches the pre-activations (Anthropic, 2025):
        /// dH(z - theta)/dz = K / eps, so the reconstruction can pull a latent over its threshold
        /// where firing would help and the L0 penalty push it under. Off: Gemma Scope's estimator
        /// (the threshold alone gets the jump's gradient).
        #[serde(default = "pre_act_ste")]
        pre_act_ste: bool,
    },
}

fn auxk_coef() -> f64 {
    defaults::AUXK_COEF
}
fn threshold_ema() -> f64 {
    defaults::THRESHOLD_EMA
}
fn group_fractions() -> Vec<f64> {
    defaults::GROUP_FRACTIONS.to_vec()
}
fn final_weight_scale() -> f64 {
    defaults::FINAL_WEIGHT_SCALE
}
fn weight_ramp() -> [f64; 2] {
    defaults::WEIGHT_RAMP
}
fn l1_coef() -> f64 {
    defaults::L1_COEF
}
fn l1_warmup_frac() -> f64 {
    defaults::L1_WARMUP_FRAC
}
fn l0_coef() -> f64 {
    defaults::L0_COEF
}
fn l0_warmup_frac() -> f64 {
    defaults::L0_WARMUP_FRAC
}
fn bandwidth() -> f64 {
    defaults::BANDWIDTH
}
fn init_threshold() -> f64 {
    defaults::INIT_THRESHOLD
}
fn pre_act_ste() -> bool {
    defaults::PRE_ACT_STE
}

/// The architecture names accepted on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchKind {
    /// [`ArchConfig::TopK`].
    TopK,
    /// [`ArchConfig::BatchTopK`].
    BatchTopK,
    /// [`ArchConfig::MatryoshkaBatchTopK`].
    MatryoshkaBatchTopK,
    /// [`ArchConfig::ReluL1`].
    ReluL1,
    /// [`ArchConfig::JumpRelu`].
    JumpRelu,
}

impl ArchConfig {
    /// The default configuration of `kind`; `k` is used by the TopK family (default 32).
    pub fn default_for(kind: ArchKind, k: Option<usize>) -> ArchConfig {
        let k = k.unwrap_or(32);
        match kind {
            ArchKind::TopK => ArchConfig::TopK {
                k,
                auxk_coef: defaults::AUXK_COEF,
                k_aux: None,
            },
            ArchKind::BatchTopK => ArchConfig::BatchTopK {
                k,
                auxk_coef: defaults::AUXK_COEF,
                k_aux: None,
                threshold_ema: defaults::THRESHOLD_EMA,
            },
            ArchKind::MatryoshkaBatchTopK => ArchConfig::MatryoshkaBatchTopK {
                k,
                auxk_coef: defaults::AUXK_COEF,
                k_aux: None,
                threshold_ema: defaults::THRESHOLD_EMA,
                group_fractions: defaults::GROUP_FRACTIONS.to_vec(),
                group_weights: None,
                final_weight_scale: defaults::FINAL_WEIGHT_SCALE,
                weight_ramp: defaults::WEIGHT_RAMP,
            },
            ArchKind::ReluL1 => ArchConfig::ReluL1 {
                l1_coef: defaults::L1_COEF,
                l1_warmup_frac: defaults::L1_WARMUP_FRAC,
            },
            ArchKind::JumpRelu => ArchConfig::JumpRelu {
                l0_coef: defaults::L0_COEF,
                target_l0: None,
                l0_warmup_frac: defaults::L0_WARMUP_FRAC,
                bandwidth: defaults::BANDWIDTH,
                init_threshold: defaults::INIT_THRESHOLD,
                pre_act_ste: defaults::PRE_ACT_STE,
            },
        }
    }

    /// Which architecture this is.
    pub fn kind(&self) -> ArchKind {
        match self {
            ArchConfig::TopK { .. } => ArchKind::TopK,
            ArchConfig::BatchTopK { .. } => ArchKind::BatchTopK,
            ArchConfig::MatryoshkaBatchTopK { .. } => ArchKind::MatryoshkaBatchTopK,
            ArchConfig::ReluL1 { .. } => ArchKind::ReluL1,
            ArchConfig::JumpRelu { .. } => ArchKind::JumpRelu,
        }
    }

    /// The name used in configs, metadata and on the command line.
    pub fn name(&self) -> &'static str {
        match self.kind() {
            ArchKind::TopK => "topk",
            ArchKind::BatchTopK => "batchtopk",
            ArchKind::MatryoshkaBatchTopK => "matryoshka-batchtopk",
            ArchKind::ReluL1 => "relu-l1",
            ArchKind::JumpRelu => "jumprelu",
        }
    }

    /// BatchTopK or Matryoshka BatchTopK: one threshold over the whole batch, an EMA inference
    /// threshold, saved as JumpReLU.
    pub fn batch_topk(&self) -> bool {
        matches!(
            self,
            ArchConfig::BatchTopK { .. } | ArchConfig::MatryoshkaBatchTopK { .. }
        )
    }

    /// (k, AuxK coefficient) of the TopK family, None for the others.
    pub fn topk_family(&self) -> Option<(usize, f64)> {
        match self {
            ArchConfig::TopK { k, auxk_coef, .. }
            | ArchConfig::BatchTopK { k, auxk_coef, .. }
            | ArchConfig::MatryoshkaBatchTopK { k, auxk_coef, .. } => Some((*k, *auxk_coef)),
            _ => None,
        }
    }

    /// Matryoshka BatchTopK's groups and the schedule of their inner weights, None for the others.
    pub fn prefix_schedule(&self) -> Option<PrefixSchedule> {
        match self {
            ArchConfig::MatryoshkaBatchTopK {
                group_fractions,
                group_weights,
                final_weight_scale,
                weight_ramp,
                ..
            } => Some(PrefixSchedule::new(
                group_fractions,
                group_weights.as_deref(),
                *final_weight_scale,
                *weight_ramp,
            )),
            _ => None,
        }
    }

    /// Decoder rows are kept at unit norm (TopK family and JumpReLU), not for ReLU-L1.
    pub fn unit_decoder(&self) -> bool {
        !matches!(self, ArchConfig::ReluL1 { .. })
    }
}

/// A training run's settings, as read from TOML (every field optional, defaults in [`defaults`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Architecture and sparsity control (`[arch] kind = "topk"  k = 32`).
    pub arch: ArchConfig,
    /// Dictionary size (latents); when absent, `expansion * d_in`.
    pub d_sae: Option<usize>,
    /// Dictionary size as a multiple of d_in, used when `d_sae` is absent.
    pub expansion: f64,
    /// Optimizer steps (one batch each).
    pub steps: u64,
    /// Rows per batch.
    pub batch: usize,
    /// Peak learning rate of Adam.
    pub lr: f64,
    /// Fraction of the steps over which the learning rate warms up linearly from 0.
    pub lr_warmup_frac: f64,
    /// Fraction of the steps, at the end, over which the learning rate decays linearly to 0.
    pub lr_decay_frac: f64,
    /// Adam beta1.
    pub adam_beta1: f64,
    /// Adam beta2.
    pub adam_beta2: f64,
    /// Adam epsilon.
    pub adam_eps: f64,
    /// Seed of the initialisation and of the data order.
    pub seed: u64,
    /// Tokens without firing after which a latent counts as dead; default
    /// min(10M, half of all training tokens, at least one batch), for BatchTopK 5 batches.
    pub dead_tokens: Option<u64>,
    /// MiB of the shuffling buffer (mixes rows across shards; decoded f32 rows).
    pub shuffle_buffer_mib: usize,
    /// Rows sampled before training to estimate the input scale and the geometric median.
    pub init_sample_rows: usize,
    /// Weiszfeld iterations of the geometric median that initialises b_dec.
    pub geomedian_iters: usize,
    /// Scale inputs by a constant so that E||x|| = sqrt(d_in) (folded into the saved weights).
    pub normalize_inputs: bool,
    /// Transcoders: add a skip connection W_skip [d_in, d_out], zero at the start (`--skip`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skip: bool,
    /// Append a line to metrics.jsonl every this many steps.
    pub log_every: u64,
    /// Write a checkpoint every this many steps (0: none before the end).
    pub checkpoint_every: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            arch: ArchConfig::default_for(ArchKind::TopK, None),
            d_sae: None,
            expansion: defaults::EXPANSION,
            steps: defaults::STEPS,
            batch: defaults::BATCH,
            lr: defaults::LR,
            lr_warmup_frac: defaults::LR_WARMUP_FRAC,
            lr_decay_frac: defaults::LR_DECAY_FRAC,
            adam_beta1: defaults::ADAM_BETA1,
            adam_beta2: defaults::ADAM_BETA2,
            adam_eps: defaults::ADAM_EPS,
            seed: defaults::SEED,
            dead_tokens: None,
            shuffle_buffer_mib: defaults::SHUFFLE_BUFFER_MIB,
            init_sample_rows: defaults::INIT_SAMPLE_ROWS,
            geomedian_iters: defaults::GEOMEDIAN_ITERS,
            normalize_inputs: true,
            skip: false,
            log_every: defaults::LOG_EVERY,
            checkpoint_every: defaults::CHECKPOINT_EVERY,
        }
    }
}

impl TrainConfig {
    /// Rows of d floats that fit in the shuffling buffer (at least one batch).
    pub fn shuffle_buffer_rows(&self, d: usize) -> usize {
        (self.shuffle_buffer_mib * (1 << 20) / (4 * d.max(1))).max(self.batch)
    }

    /// Parses a TOML config; an unknown key is an error that names it.
    pub fn from_toml(text: &str) -> Result<TrainConfig> {
        toml::from_str(text).map_err(|e| toml_error(text, &e))
    }

    /// The config as TOML (saved next to the SAE).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Checks ranges and resolves the sizes that depend on the data (`d_in`, rows per step).
    pub fn resolve(&self, d_in: usize) -> Result<Resolved> {
        let bad = |m: String| Err(TrainError::Invalid(m));
        if d_in == 0 {
            return bad("d_in is 0".into());
        }
        let d_sae = match self.d_sae {
            Some(n) => n,
            None => {
                if !(self.expansion.is_finite() && self.expansion > 0.0) {
                    return bad(format!("expansion must be > 0, got {}", self.expansion));
                }
                (self.expansion * d_in as f64).round() as usize
            }
        };
        if d_sae == 0 {
            return bad("d_sae must be > 0".into());
        }
        if self.steps == 0 || self.batch == 0 {
            return bad("steps and batch must be > 0".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr must be > 0, got {}", self.lr));
        }
        let fracs = [self.lr_warmup_frac, self.lr_decay_frac];
        if fracs.iter().any(|f| !(0.0..=1.0).contains(f)) || fracs[0] + fracs[1] > 1.0 {
            return bad(
                "lr_warmup_frac and lr_decay_frac must lie in [0, 1] and sum to <= 1".into(),
            );
        }
        let k_aux_default = (d_in / 2).clamp(1, defaults::K_AUX_MAX).min(d_sae);
        let mut k_aux = 0;
        match &self.arch {
            ArchConfig::TopK { k, k_aux: ka, .. }
            | ArchConfig::BatchTopK { k, k_aux: ka, .. }
            | ArchConfig::MatryoshkaBatchTopK { k, k_aux: ka, .. } => {
                if *k == 0 || *k > d_sae {
                    return bad(format!("k = {k} must lie in 1..=d_sae ({d_sae})"));
                }
                if let Some(sched) = self.arch.prefix_schedule() {
                    matryoshka::Prefixes::new(&sched.fractions, Some(&sched.start), d_sae)?;
                    sched.check()?;
                }
                // BatchTopK revives its many dead latents with a wider AuxK (Bussmann et al. use
                // 512; capped here at Gao et al.'s 256).
                let default = if self.arch.batch_topk() {
                    defaults::K_AUX_MAX.min(d_sae)
                } else {
                    k_aux_default
                };
                k_aux = ka.unwrap_or(default).min(d_sae);
            }
            ArchConfig::ReluL1 { l1_coef, .. } if *l1_coef < 0.0 => {
                return bad(format!("l1_coef must be >= 0, got {l1_coef}"));
            }
            ArchConfig::JumpRelu {
                bandwidth,
                init_threshold,
                target_l0,
                l0_warmup_frac,
                ..
            } => {
                if !(0.0..=1.0).contains(l0_warmup_frac) {
                    return bad(format!(
                        "l0_warmup_frac must lie in [0, 1], got {l0_warmup_frac}"
                    ));
                }
                if *bandwidth <= 0.0 || *init_threshold <= 0.0 {
                    return bad("jumprelu bandwidth and init_threshold must be > 0".into());
                }
                if target_l0.is_some_and(|t| t <= 0.0 || t > d_sae as f64) {
                    return bad(format!("target_l0 must lie in (0, d_sae = {d_sae}]"));
                }
            }
            ArchConfig::ReluL1 { .. } => {}
        }
        let total = self.steps.saturating_mul(self.batch as u64);
        let dead_tokens = self.dead_tokens.unwrap_or_else(|| {
            if self.arch.batch_topk() {
                return defaults::BATCHTOPK_DEAD_BATCHES * self.batch as u64;
            }
            let frac = (total as f64 * defaults::DEAD_TOKENS_FRAC) as u64;
            frac.min(defaults::DEAD_TOKENS_MAX).max(self.batch as u64)
        });
        Ok(Resolved {
            d_in,
            d_sae,
            d_out: None,
            k_aux,
            dead_tokens,
        })
    }
}

/// A TOML error of `text` as one line, with the line number when the parser knows it.
pub(crate) fn toml_error(text: &str, e: &toml::de::Error) -> TrainError {
    let msg = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            TrainError::Config(format!("line {line}: {msg}"))
        }
        None => TrainError::Config(msg),
    }
}

/// Sizes resolved from the config and the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// Input width (the store's d).
    pub d_in: usize,
    /// Dictionary size.
    pub d_sae: usize,
    /// A transcoder's output width (the target store's d); None for an autoencoder.
    pub d_out: Option<usize>,
    /// AuxK latents (0 when the architecture has no AuxK).
    pub k_aux: usize,
    /// Dead-latent window in tokens.
    pub dead_tokens: u64,
}
