//! Every default value of the training configuration, in one place.

/// Optimizer steps.
pub const STEPS: u64 = 1000;
/// Rows per batch.
pub const BATCH: usize = 4096;
/// Dictionary size as a multiple of d_in when `d_sae` is not given.
pub const EXPANSION: f64 = 8.0;
/// Peak learning rate.
pub const LR: f64 = 2e-3;
/// Fraction of the steps over which the learning rate warms up linearly from 0.
pub const LR_WARMUP_FRAC: f64 = 0.05;
/// Fraction of the steps (at the end) over which the learning rate decays linearly to 0.
pub const LR_DECAY_FRAC: f64 = 0.2;
/// Adam beta1.
pub const ADAM_BETA1: f64 = 0.9;
/// Adam beta2.
pub const ADAM_BETA2: f64 = 0.999;
/// Adam epsilon.
pub const ADAM_EPS: f64 = 1e-8;
/// Seed of the initialisation and the data order.
pub const SEED: u64 = 0;
/// Upper bound of the dead-latent window, in tokens (Gao et al.: 10M).
pub const DEAD_TOKENS_MAX: u64 = 10_000_000;
/// The dead-latent window is at most this fraction of all training tokens (small runs).
pub const DEAD_TOKENS_FRAC: f64 = 0.5;
/// BatchTopK: a latent is dead after this many batches without firing (Bussmann et al.:
/// n_batches_to_dead = 5). With the long TopK window its AuxK almost never ran, and latents
/// that lost the batch-wide competition early never came back (mmcs 0.977 instead of 0.999
/// at full size, 2000 steps).
pub const BATCHTOPK_DEAD_BATCHES: u64 = 5;
/// MiB of the shuffling buffer (decoded f32 rows): 256 MiB is 174,762 rows at d 384.
pub const SHUFFLE_BUFFER_MIB: usize = 256;
/// Rows sampled to estimate the input scale and the geometric median.
pub const INIT_SAMPLE_ROWS: usize = 16_384;
/// Weiszfeld iterations for the geometric median.
pub const GEOMEDIAN_ITERS: usize = 10;
/// Log a metrics line every this many steps.
pub const LOG_EVERY: u64 = 10;
/// Checkpoint every this many steps (0: only at the end).
pub const CHECKPOINT_EVERY: u64 = 500;
/// AuxK loss coefficient (Gao et al.: 1/32).
pub const AUXK_COEF: f64 = 1.0 / 32.0;
/// Cap of k_aux (Gao et al.: 256 or d_in / 2).
pub const K_AUX_MAX: usize = 256;
/// EMA decay of the BatchTopK inference threshold.
pub const THRESHOLD_EMA: f64 = 0.99;
/// Matryoshka groups: one inner prefix of 1/32 of the dictionary, then the rest. On the README's
/// synthetic benchmarks (1000 steps) this recovers 512 equally frequent features (mmcs 0.9986,
/// recovered 0.996 with the weight ramp below) and absorbs little on hierarchical features
/// (0.09 against BatchTopK's 0.45); the former 1/16, 3/16, 3/4 groups learned mixtures of features
/// in their 64- and 256-latent prefixes (0.955 / 0.811), a lone 1/16 prefix reached 0.986 / 0.959.
pub const GROUP_FRACTIONS: [f64; 2] = [0.03125, 0.96875];
/// Matryoshka: the inner weights end at this multiple of `group_weights` (equal weights early,
/// while the parents settle in the inner prefix; smaller ones late, so outer latents sharpen).
pub const FINAL_WEIGHT_SCALE: f64 = 0.2;
/// Matryoshka: the weight ramp runs from 50% to 80% of the steps.
pub const WEIGHT_RAMP: [f64; 2] = [0.5, 0.8];
/// ReLU-L1 sparsity coefficient lambda (inputs scaled to E||x|| = sqrt(d_in)).
pub const L1_COEF: f64 = 5.0;
/// Fraction of the steps over which lambda warms up linearly from 0 (Anthropic: 5%).
pub const L1_WARMUP_FRAC: f64 = 0.05;
/// JumpReLU L0 coefficient, tuned for the quadratic target penalty (`target_l0`, what `--k`
/// sets); the linear penalty (no target) is l0_coef * L0 and wants a smaller one (1-2).
pub const L0_COEF: f64 = 10.0;
/// Fraction of the steps over which the JumpReLU L0 coefficient warms up linearly from 0.
pub const L0_WARMUP_FRAC: f64 = 0.1;
/// JumpReLU straight-through bandwidth epsilon (in scaled-input units). Far wider than Gemma
/// Scope's 0.001: short runs need the threshold gradient from many rows (e2e synthetic data,
/// 1000 steps, target L0 3, pre-activation estimator: bandwidth 0.5 -> mmcs 0.936, 1 -> 0.957,
/// 2 -> 0.977, 4 -> 0.986, 6 -> 0.986; threshold-only estimator at 4: 0.932).
pub const BANDWIDTH: f64 = 4.0;
/// JumpReLU initial threshold (in scaled-input units, where E||x|| = sqrt(d_in): a random unit
/// encoder direction gives pre-activations of about unit spread, so 2.5 starts with few latents on).
pub const INIT_THRESHOLD: f64 = 2.5;
/// JumpReLU: the straight-through estimator also reaches the pre-activations (e2e synthetic
/// data, 1000 steps: mmcs 0.932 -> 0.986, recovered 0.80 -> 0.97; the README run, 2000 steps:
/// 0.961 -> 0.999, 0.84 -> 1.00). Without it, latents that cover two features stay merged:
/// nothing moves a latent's encoder towards rows where it falls just short of its threshold.
pub const PRE_ACT_STE: bool = true;
