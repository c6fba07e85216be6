//! Training every instance of a toy model at once with candle autograd and AdamW.
//!
//! Shapes: x [I, B, n]; W [I, m, n]; h = x W^T [I, B, m]; x' = h W + b [I, B, n].

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::autograd::train_autograd;
use crate::error::{Result, ToyError};
use crate::fast::{grads, AdamW, Grads, Scratch};
use crate::model::{Instance, ModelKind, ToyModel};
use crate::rng::{fill_features, mix, Rng};

/// The optimiser recipe (the paper's by default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSettings {
    /// Optimizer steps (one batch per instance each).
    pub steps: u64,
    /// Samples per batch and instance.
    pub batch: usize,
    /// AdamW learning rate (constant).
    pub lr: f64,
    /// AdamW decoupled weight decay (PyTorch's default 0.01, as in the paper's notebook).
    pub weight_decay: f64,
    /// Seed of the initialisation and of the data stream.
    pub seed: u64,
    /// Train with the candle-autograd reference step instead of the hand-derived one (slower;
    /// same result up to float rounding).
    pub autograd: bool,
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            steps: 10_000,
            batch: 1024,
            lr: 1e-3,
            weight_decay: 0.01,
            seed: 0,
            autograd: false,
        }
    }
}

impl TrainSettings {
    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ToyError::Invalid(m));
        if self.steps == 0 || self.batch == 0 {
            return bad(format!(
                "steps ({}) and batch ({}) must be positive",
                self.steps, self.batch
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr must be > 0, got {}", self.lr));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!(
                "weight_decay must be >= 0, got {}",
                self.weight_decay
            ));
        }
        Ok(())
    }
}

/// Checks the model's sizes and every instance's sparsity and importances.
fn validate(n: usize, m: usize, instances: &[Instance]) -> Result<()> {
    let bad = |msg: String| Err(ToyError::Invalid(msg));
    if n == 0 || m == 0 {
        return bad(format!("features ({n}) and hidden ({m}) must be positive"));
    }
    if instances.is_empty() {
        return bad("no instances (sparsity levels) to train".into());
    }
    for (k, inst) in instances.iter().enumerate() {
        if !(0.0..1.0).contains(&inst.sparsity) {
            return bad(format!(
                "instance {k}: sparsity must be in [0, 1), got {}",
                inst.sparsity
            ));
        }
        if inst.importance.len() != n {
            return bad(format!(
                "instance {k}: {} importances for {n} features",
                inst.importance.len()
            ));
        }
        if inst
            .importance
            .iter()
            .any(|v| !(v.is_finite() && *v >= 0.0))
        {
            return bad(format!("instance {k}: importances must be finite and >= 0"));
        }
    }
    Ok(())
}

/// Initial parameters: W ~ N(0, 2 / (n + m)) (Xavier normal per instance), b = 0.
pub fn init(kind: ModelKind, n: usize, m: usize, instances: &[Instance], seed: u64) -> ToyModel {
    let mut rng = Rng::new(mix(seed, u64::MAX));
    let std = (2.0 / (n + m) as f64).sqrt();
    let w = (0..instances.len() * m * n)
        .map(|_| (rng.normal() * std) as f32)
        .collect();
    ToyModel {
        kind,
        n,
        m,
        instances: instances.to_vec(),
        w,
        b: vec![0.0; instances.len() * n],
    }
}

/// One batch for every instance: [I, B, n], instance k from its own stream (seed, step, k).
pub fn sample_batch(
    instances: &[Instance],
    n: usize,
    batch: usize,
    seed: u64,
    step: u64,
) -> Vec<f32> {
    let mut x = vec![0f32; instances.len() * batch * n];
    let step_seed = mix(seed, step);
    x.par_chunks_mut(batch * n)
        .zip(instances.par_iter())
        .enumerate()
        .for_each(|(k, (chunk, inst))| {
            let mut rng = Rng::new(mix(step_seed, k as u64));
            fill_features(&mut rng, inst.density(), chunk);
        });
    x
}

/// What training returns: the parameters and each instance's loss on the last batch.
#[derive(Clone, Debug)]
pub struct Trained {
    /// The trained parameters.
    pub model: ToyModel,
    /// Loss of each instance on the last step's batch.
    pub final_loss: Vec<f64>,
}

/// Trains every instance of a `kind` model with n features and m hidden dimensions.
/// `progress(step, total_loss)` is called after every step.
pub fn train(
    kind: ModelKind,
    n: usize,
    m: usize,
    instances: &[Instance],
    settings: &TrainSettings,
    progress: impl FnMut(u64, f64),
) -> Result<Trained> {
    validate(n, m, instances)?;
    settings.validate()?;
    let start = init(kind, n, m, instances, settings.seed);
    if settings.autograd {
        train_autograd(start, settings, progress)
    } else {
        Ok(train_fast(start, settings, progress))
    }
}

/// One instance's parameters, optimiser state and buffers in the hand-derived path.
struct InstanceState {
    w: Vec<f32>,
    b: Vec<f32>,
    opt_w: AdamW,
    opt_b: AdamW,
    imp: Vec<f32>,
    density: f64,
    x: Vec<f32>,
    scratch: Scratch,
    g: Grads,
}

fn train_fast(start: ToyModel, s: &TrainSettings, mut progress: impl FnMut(u64, f64)) -> Trained {
    let (n, m, kind) = (start.n, start.m, start.kind);
    let mut states: Vec<InstanceState> = (0..start.instances.len())
        .map(|k| InstanceState {
            w: start.w_of(k).to_vec(),
            b: start.b_of(k).to_vec(),
            opt_w: AdamW::new(m * n),
            opt_b: AdamW::new(n),
            imp: start.instances[k]
                .importance
                .iter()
                .map(|v| *v as f32)
                .collect(),
            density: start.instances[k].density(),
            x: vec![0.0; s.batch * n],
            scratch: Scratch::default(),
            g: Grads::default(),
        })
        .collect();
    for step in 0..s.steps {
        let step_seed = mix(s.seed, step);
        states.par_iter_mut().enumerate().for_each(|(k, st)| {
            let mut rng = Rng::new(mix(step_seed, k as u64));
            fill_features(&mut rng, st.density, &mut st.x);
            grads(
                kind,
                n,
                m,
                &st.x,
                &st.w,
                &st.b,
                &st.imp,
                &mut st.scratch,
                &mut st.g,
            );
            st.opt_w.step(&mut st.w, &st.g.w, s.lr, s.weight_decay);
            st.opt_b.step(&mut st.b, &st.g.b, s.lr, s.weight_decay);
        });
        progress(step + 1, states.iter().map(|st| st.g.loss).sum());
    }
    let final_loss = states.iter().map(|st| st.g.loss).collect();
    let model = ToyModel {
        w: states.iter().flat_map(|st| st.w.iter().copied()).collect(),
        b: states.iter().flat_map(|st| st.b.iter().copied()).collect(),
        ..start
    };
    Trained { model, final_loss }
}

/// Loss and gradients of every instance on x [I, B, n] through the hand-derived path.
pub fn fast_grads(model: &ToyModel, x: &[f32], batch: usize) -> Vec<Grads> {
    let (n, m) = (model.n, model.m);
    (0..model.instances.len())
        .map(|k| {
            let imp: Vec<f32> = model.instances[k]
                .importance
                .iter()
                .map(|v| *v as f32)
                .collect();
            let mut g = Grads::default();
            let xk = &x[k * batch * n..(k + 1) * batch * n];
            grads(
                model.kind,
                n,
                m,
                xk,
                model.w_of(k),
                model.b_of(k),
                &imp,
                &mut Scratch::default(),
                &mut g,
            );
            g
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autograd::{autograd_grads, batched_losses};

    fn instances(n: usize) -> Vec<Instance> {
        vec![
            Instance::decaying(n, 0.0, 0.7),
            Instance::decaying(n, 0.9, 0.9),
            Instance::decaying(n, 0.5, 1.0),
        ]
    }

    /// The batched candle loss equals the plain per-sample host loss, for all three models.
    #[test]
    fn batched_loss_matches_plain_loss() {
        let (n, m, batch) = (7, 3, 64);
        let inst = instances(n);
        for kind in [
            ModelKind::ReluOutput,
            ModelKind::Linear,
            ModelKind::HiddenRelu,
        ] {
            let mut model = init(kind, n, m, &inst, 5);
            model
                .b
                .iter_mut()
                .enumerate()
                .for_each(|(j, v)| *v = 0.05 * (j % 4) as f32 - 0.1);
            let x = sample_batch(&inst, n, batch, 1, 0);
            let got = batched_losses(&model, &x, batch).unwrap();
            for (k, g) in got.iter().enumerate() {
                let want = model.loss_one(k, &x[k * batch * n..(k + 1) * batch * n]);
                assert!(
                    (g - want).abs() < 1e-5 * want.max(1.0),
                    "{kind:?} {k}: {g} vs {want}"
                );
            }
        }
    }

    /// Same seed, same weights; another seed, other weights; the loss falls.
    #[test]
    fn training_is_seeded_and_learns() {
        let (n, m) = (6, 2);
        let inst = instances(n);
        let s = TrainSettings {
            steps: 300,
            batch: 128,
            ..TrainSettings::default()
        };
        let mut first = None;
        let a = train(ModelKind::ReluOutput, n, m, &inst, &s, |step, l| {
            if step == 1 {
                first = Some(l)
            }
        })
        .unwrap();
        let b = train(ModelKind::ReluOutput, n, m, &inst, &s, |_, _| {}).unwrap();
        assert_eq!(a.model, b.model);
        let c = train(
            ModelKind::ReluOutput,
            n,
            m,
            &inst,
            &TrainSettings { seed: 1, ..s },
            |_, _| {},
        )
        .unwrap();
        assert_ne!(a.model.w, c.model.w);
        let end: f64 = a.final_loss.iter().sum();
        assert!(
            end < 0.7 * first.unwrap(),
            "loss {} -> {end}",
            first.unwrap()
        );
    }

    /// The hand-derived gradients equal candle autograd's, for all three models.
    #[test]
    fn fast_gradients_match_autograd() {
        let (n, m, batch) = (9, 4, 96);
        let inst = instances(n);
        for kind in [
            ModelKind::ReluOutput,
            ModelKind::Linear,
            ModelKind::HiddenRelu,
        ] {
            let mut model = init(kind, n, m, &inst, 2);
            model
                .b
                .iter_mut()
                .enumerate()
                .for_each(|(j, v)| *v = 0.07 * (j % 5) as f32 - 0.15);
            let x = sample_batch(&inst, n, batch, 3, 1);
            let want = autograd_grads(&model, &x, batch).unwrap();
            let got = fast_grads(&model, &x, batch);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g.loss - w.loss).abs() < 1e-5 * w.loss.max(1.0),
                    "{kind:?} loss"
                );
                for (a, b) in g.w.iter().zip(&w.w).chain(g.b.iter().zip(&w.b)) {
                    assert!((a - b).abs() < 1e-5, "{kind:?}: {a} vs {b}");
                }
            }
        }
    }

    /// Both training paths (with their AdamW) end at the same weights. The hidden-ReLU model
    /// runs fewer steps: a pre-activation that rounding puts on the other side of 0 changes its
    /// trajectory, and Adam's normalisation amplifies that.
    #[test]
    fn fast_and_autograd_training_agree() {
        let (n, m) = (8, 3);
        let inst = instances(n);
        for (kind, steps) in [
            (ModelKind::ReluOutput, 40),
            (ModelKind::Linear, 40),
            (ModelKind::HiddenRelu, 8),
        ] {
            let s = TrainSettings {
                steps,
                batch: 64,
                ..TrainSettings::default()
            };
            let fast = train(kind, n, m, &inst, &s, |_, _| {}).unwrap();
            let auto = TrainSettings {
                autograd: true,
                ..s.clone()
            };
            let slow = train(kind, n, m, &inst, &auto, |_, _| {}).unwrap();
            for (a, b) in fast.model.w.iter().zip(&slow.model.w) {
                // ReLU kinks and Adam's normalisation amplify rounding a little.
                assert!((a - b).abs() < 2e-3, "{kind:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        let s = TrainSettings::default();
        let one = |sp: f64| vec![Instance::decaying(3, sp, 0.7)];
        assert!(train(ModelKind::Linear, 3, 1, &one(1.0), &s, |_, _| {}).is_err());
        assert!(train(ModelKind::Linear, 0, 1, &one(0.5), &s, |_, _| {}).is_err());
        assert!(train(ModelKind::Linear, 4, 1, &one(0.5), &s, |_, _| {}).is_err());
        let zero = TrainSettings { steps: 0, ..s };
        assert!(train(ModelKind::Linear, 3, 1, &one(0.5), &zero, |_, _| {}).is_err());
    }
}
