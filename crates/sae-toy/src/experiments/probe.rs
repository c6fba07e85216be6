//! Our SAE on a toy model's hidden layer: h of sampled inputs goes into an activation store whose
//! ground truth is the represented features' directions in h (W_i; ReLU(W_i) for the hidden-ReLU
//! model), `sae-train` trains on it and `sae-model` evaluates it as `sae eval` does (mmcs and
//! recovered_frac over those features), and the latents' polysemanticity is counted like the
//! neurons'.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use sae_store::{
    DType, RowBatch, Source, Store, StoreSpec, StoreWriter, SynthSource, GROUND_TRUTH_FILE,
};
use sae_train::{ArchConfig, Backend, Observer, RunSpec, TrainConfig};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::experiments::intro::mean_alive;
use crate::measure::REPRESENTED_NORM;
use crate::model::{ModelKind, ToyModel};
use crate::neurons::features_per_unit;
use crate::rng::{fill_features, mix, Rng};

/// Settings of the SAE probe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// Train the SAE at all.
    pub enabled: bool,
    /// Probe the instances of experiment 1 with at least this sparsity.
    pub min_sparsity: f64,
    /// Models probed.
    pub models: Vec<ModelKind>,
    /// Rows written to the store (samples with at least one active feature), held-out included.
    pub rows: u64,
    /// Fraction of the rows held out for evaluation.
    pub eval_frac: f64,
    /// SAE latents.
    pub d_sae: usize,
    /// TopK k.
    pub k: usize,
    /// SAE training steps.
    pub steps: u64,
    /// SAE batch.
    pub batch: usize,
    /// SAE peak learning rate.
    pub lr: f64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            enabled: true,
            min_sparsity: 0.99,
            models: vec![ModelKind::ReluOutput, ModelKind::HiddenRelu],
            rows: 100_000,
            eval_frac: 0.1,
            d_sae: 40,
            k: 1,
            steps: 2000,
            batch: 1024,
            lr: 2e-3,
        }
    }
}

/// What the SAE recovered from one instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// Which toy model.
    pub kind: ModelKind,
    /// The instance's sparsity.
    pub sparsity: f64,
    /// The features in the ground truth: direction in h with norm > the representation threshold.
    pub represented: Vec<usize>,
    /// Best cosine of each represented feature's direction with any decoder row.
    pub max_cosines: Vec<f64>,
    /// Mean of `max_cosines` (as `sae eval`).
    pub mmcs: f64,
    /// Fraction of represented features with best cosine > 0.9.
    pub recovered_frac: f64,
    /// Held-out FVU of the SAE.
    pub fvu: f64,
    /// Held-out L0.
    pub l0: f64,
    /// Dead latents.
    pub dead_frac: f64,
    /// Mean features driving an SAE latent (over latents driven by any feature).
    pub latent_features: Option<f64>,
    /// Hidden-ReLU model: mean features driving a neuron (over driven neurons).
    pub neuron_features: Option<f64>,
    /// The store and the SAE.
    pub store: PathBuf,
    /// The SAE folder.
    pub sae: PathBuf,
}

struct Quiet;
impl Observer for Quiet {}

/// Direction of feature i in h: h(e_i) for the instance (W_i, or ReLU(W_i)) [n][m].
fn directions(model: &ToyModel, k: usize) -> Vec<Vec<f32>> {
    (0..model.n)
        .map(|i| {
            let mut e = vec![0f32; model.n];
            e[i] = 1.0;
            model.forward_one(k, &e).0
        })
        .collect()
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt()
}

/// Writes `rows` hidden vectors of instance `k` (inputs with no active feature are skipped).
fn write_store(model: &ToyModel, k: usize, cfg: &ProbeConfig, seed: u64, dir: &Path) -> Result<()> {
    let density = model.instances[k].density();
    let spec = StoreSpec {
        d: model.m,
        dtype: DType::F32,
        shard_rows: 65_536,
        source: Source::Synthetic(SynthSource {
            features: model.n,
            dim: model.m,
            firing_prob: density,
            zipf_exponent: None,
            correlated_groups: None,
            samples: cfg.rows,
            seed,
            magnitude: format!(
                "uniform(0,1); hidden layer of the toy model {} (instance S = {}), inputs with no active feature left out",
                model.kind.name(),
                model.instances[k].sparsity
            ),
        }),
        with_token_ids: false,
        with_doc_ids: false,
        with_positions: false,
    };
    let mut w = StoreWriter::create(dir, spec)?;
    let mut rng = Rng::new(mix(seed ^ 0x5AE5_70E5, k as u64));
    let (mut x, mut buf) = (vec![0f32; model.n], Vec::with_capacity(65_536 * model.m));
    let mut written = 0u64;
    while written < cfg.rows {
        fill_features(&mut rng, density, &mut x);
        if x.iter().all(|v| *v == 0.0) {
            continue;
        }
        buf.extend(model.forward_one(k, &x).0);
        written += 1;
        if buf.len() == 65_536 * model.m || written == cfg.rows {
            w.push(
                RowBatch {
                    acts: &buf,
                    ..Default::default()
                },
                None,
            )?;
            buf.clear();
        }
    }
    let eval_rows = ((cfg.rows as f64 * cfg.eval_frac).round() as u64).clamp(1, cfg.rows - 1);
    w.finish(eval_rows)?;
    Ok(())
}

fn ground_truth(dirs: &[Vec<f32>], keep: &[usize], m: usize, path: &Path) -> Result<()> {
    let bytes: Vec<u8> = keep
        .iter()
        .flat_map(|&i| dirs[i].iter().flat_map(|v| v.to_le_bytes()))
        .collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![keep.len(), m], &bytes)?;
    let data = safetensors::serialize([("features", view)], None)?;
    sae_store::atomic_write(path, &data)?;
    Ok(())
}

/// Trains and evaluates an SAE on instance `k` of `model`, under `dir` (`store/`, `sae/`).
pub fn run_probe(
    model: &ToyModel,
    k: usize,
    cfg: &ProbeConfig,
    seed: u64,
    dir: &Path,
) -> Result<ProbeResult> {
    let (store_dir, sae_dir) = (dir.join("store"), dir.join("sae"));
    let dirs = directions(model, k);
    let represented: Vec<usize> = (0..model.n)
        .filter(|&i| norm(&dirs[i]) > REPRESENTED_NORM)
        .collect();
    if represented.is_empty() {
        return Err(crate::ToyError::Invalid(format!(
            "{} S = {}: no represented feature for the SAE to recover",
            model.kind.name(),
            model.instances[k].sparsity
        )));
    }
    write_store(model, k, cfg, seed, &store_dir)?;
    let gt = store_dir.join(GROUND_TRUTH_FILE);
    ground_truth(&dirs, &represented, model.m, &gt)?;
    let tc = TrainConfig {
        arch: ArchConfig::default_for(sae_train::ArchKind::TopK, Some(cfg.k)),
        d_sae: Some(cfg.d_sae),
        steps: cfg.steps,
        batch: cfg.batch,
        lr: cfg.lr,
        seed,
        checkpoint_every: 0,
        ..TrainConfig::default()
    };
    let spec = RunSpec {
        store: store_dir.clone(),
        target: None,
        out: sae_dir.clone(),
        cfg: tc,
        resume: false,
        backend: Backend::Fast,
    };
    sae_train::train(&spec, &mut Quiet)?;
    let sae = sae_model::Sae::load(&sae_dir)?;
    let store = Store::open(&store_dir)?;
    let ev = sae_model::evaluate(&sae, &store, Some(&gt))?;
    let feats = sae_model::load_ground_truth(&gt, model.m)?;
    let best = sae_model::cosine::max_cosines(&feats, &sae.w_dec)?;
    // Latent l's response to feature i alone: [n, d_sae] -> transposed [d_sae, n].
    let flat: Vec<f32> = dirs.iter().flatten().copied().collect();
    let f = sae.encode(&Tensor::from_vec(flat, (model.n, model.m), &Device::Cpu)?)?;
    let resp = f.t()?.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    let latent_features = mean_alive(&features_per_unit(&resp, model.n));
    let neuron_features = model.kind.hidden_relu().then(|| {
        let r: Vec<f32> = model.w_of(k).iter().map(|v| v.max(0.0)).collect();
        mean_alive(&features_per_unit(&r, model.n))
    });
    Ok(ProbeResult {
        kind: model.kind,
        sparsity: model.instances[k].sparsity,
        represented,
        max_cosines: best,
        mmcs: ev.mmcs.unwrap_or(0.0),
        recovered_frac: ev.recovered_frac.unwrap_or(0.0),
        fvu: ev.fvu,
        l0: ev.l0,
        dead_frac: ev.dead_frac,
        latent_features,
        neuron_features: neuron_features.flatten(),
        store: store_dir,
        sae: sae_dir,
    })
}
