//! Experiment 1 (the paper's introduction figure): n = 20 features in m = 5 dimensions,
//! importance 0.7^i, one instance per sparsity; the linear model against the ReLU-output model,
//! plus the hidden-ReLU model whose neurons can be polysemantic.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::measure::{geometry, gram, Geometry};
use crate::model::{Instance, ModelKind, ToyModel};
use crate::neurons::{count_kurtosis, features_per_unit, kurtosis, CountKurtosis, UnitStats};
use crate::rng::{fill_features, mix, Rng};
use crate::train::{train, TrainSettings};
use crate::Progress;

/// Settings of experiment 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntroConfig {
    /// Features n.
    pub features: usize,
    /// Hidden dimensions m.
    pub hidden: usize,
    /// Importance I_i = r^i.
    pub importance_decay: f64,
    /// One instance per sparsity S.
    pub sparsities: Vec<f64>,
    /// Models trained, each over every sparsity.
    pub models: Vec<ModelKind>,
    /// Inputs sampled per instance for the neurons' activation kurtosis.
    pub kurtosis_samples: usize,
}

impl Default for IntroConfig {
    fn default() -> Self {
        IntroConfig {
            features: 20,
            hidden: 5,
            importance_decay: 0.7,
            sparsities: vec![0.0, 0.7, 0.9, 0.97, 0.99, 0.997, 0.999],
            models: vec![
                ModelKind::Linear,
                ModelKind::ReluOutput,
                ModelKind::HiddenRelu,
            ],
            kurtosis_samples: 20_000,
        }
    }
}

/// One trained instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceResult {
    /// Sparsity S.
    pub sparsity: f64,
    /// Loss on the last training batch.
    pub loss: f64,
    /// W [m][n].
    pub w: Vec<Vec<f32>>,
    /// b [n].
    pub b: Vec<f32>,
    /// W^T W [n][n].
    pub wtw: Vec<Vec<f64>>,
    /// ||W_i||, superposition, D_i, D*.
    pub geometry: Geometry,
    /// Hidden-ReLU model only: each neuron's feature count and activation kurtosis.
    pub neurons: Option<Vec<UnitStats>>,
    /// Hidden-ReLU model only: mean features per neuron over neurons driven by any feature.
    pub mean_features_per_neuron: Option<f64>,
}

/// One model over every sparsity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelResult {
    /// Which model.
    pub kind: ModelKind,
    /// One per sparsity, in the config's order.
    pub instances: Vec<InstanceResult>,
    /// Hidden-ReLU model only: neurons' feature count against kurtosis, pooled over sparsities.
    pub count_kurtosis: Option<CountKurtosis>,
    /// The trained parameters (for the SAE probe).
    #[serde(skip)]
    pub model: Option<ToyModel>,
}

/// Mean of the positive counts (units driven by at least one feature).
pub fn mean_alive(counts: &[usize]) -> Option<f64> {
    let alive: Vec<f64> = counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| *c as f64)
        .collect();
    (!alive.is_empty()).then(|| alive.iter().sum::<f64>() / alive.len() as f64)
}

/// Neurons of instance `k` of a hidden-ReLU model: features driving each (ReLU(W_ji) is neuron
/// j's response to feature i alone) and kurtosis over `samples` inputs from the instance's data.
pub fn neuron_stats(model: &ToyModel, k: usize, samples: usize, seed: u64) -> Vec<UnitStats> {
    let (m, n) = (model.m, model.n);
    let w = model.w_of(k);
    let response: Vec<f32> = w.iter().map(|v| v.max(0.0)).collect();
    let counts = features_per_unit(&response, n);
    let mut rng = Rng::new(mix(seed ^ 0x6B75_7274, k as u64));
    let mut acts = vec![0f32; samples * m];
    let mut x = vec![0f32; n];
    for s in 0..samples {
        fill_features(&mut rng, model.instances[k].density(), &mut x);
        let (h, _) = model.forward_one(k, &x);
        (0..m).for_each(|j| acts[j * samples + s] = h[j]);
    }
    counts
        .iter()
        .enumerate()
        .map(|(j, &c)| UnitStats {
            features: c,
            kurtosis: kurtosis(&acts[j * samples..(j + 1) * samples]),
        })
        .collect()
}

fn instance_result(
    model: &ToyModel,
    k: usize,
    loss: f64,
    cfg: &IntroConfig,
    seed: u64,
) -> InstanceResult {
    let (m, n) = (model.m, model.n);
    let w = model.w_of(k);
    let g = gram(w, m, n);
    let neurons = model
        .kind
        .hidden_relu()
        .then(|| neuron_stats(model, k, cfg.kurtosis_samples, seed));
    let mean = neurons
        .as_ref()
        .and_then(|u| mean_alive(&u.iter().map(|s| s.features).collect::<Vec<_>>()));
    InstanceResult {
        sparsity: model.instances[k].sparsity,
        loss,
        w: w.chunks_exact(n).map(|r| r.to_vec()).collect(),
        b: model.b_of(k).to_vec(),
        wtw: g.chunks_exact(n).map(|r| r.to_vec()).collect(),
        geometry: geometry(w, m, n),
        neurons,
        mean_features_per_neuron: mean,
    }
}

/// Trains every model of `cfg` over every sparsity and measures each instance.
pub fn run_intro(
    cfg: &IntroConfig,
    settings: &TrainSettings,
    progress: &mut dyn Progress,
) -> Result<Vec<ModelResult>> {
    let instances: Vec<Instance> = cfg
        .sparsities
        .iter()
        .map(|s| Instance::decaying(cfg.features, *s, cfg.importance_decay))
        .collect();
    let mut out = Vec::new();
    for kind in &cfg.models {
        let label = format!("intro {}", kind.name());
        progress.begin(&label, settings.steps);
        let trained = train(
            *kind,
            cfg.features,
            cfg.hidden,
            &instances,
            settings,
            |s, l| progress.step(s, l),
        )?;
        progress.end();
        let model = trained.model;
        let results: Vec<InstanceResult> = (0..instances.len())
            .map(|k| instance_result(&model, k, trained.final_loss[k], cfg, settings.seed))
            .collect();
        let count_kurtosis = kind.hidden_relu().then(|| {
            let units: Vec<UnitStats> = results
                .iter()
                .flat_map(|r| r.neurons.clone().unwrap_or_default())
                .collect();
            count_kurtosis(&units)
        });
        out.push(ModelResult {
            kind: *kind,
            instances: results,
            count_kurtosis,
            model: Some(model),
        });
    }
    Ok(out)
}
