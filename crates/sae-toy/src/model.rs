//! The toy models of Elhage et al. (2022), many instances side by side in one batched model.
//!
//! Per instance: W [m, n], b [n]; features x [n].
//! - ReLU output:   h = W x,        x' = ReLU(W^T h + b)
//! - linear output: h = W x,        x' = W^T h + b
//! - hidden ReLU:   h = ReLU(W x),  x' = ReLU(W^T h + b)  (m neurons in a privileged basis)
//!
//! Loss of an instance: sum_i I_i (x_i - x'_i)^2 averaged over the batch; the instances' losses
//! are summed (each instance's gradient only sees its own loss).

use serde::{Deserialize, Serialize};

/// Which toy model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// x' = ReLU(W^T W x + b).
    ReluOutput,
    /// x' = W^T W x + b (no superposition expected).
    Linear,
    /// h = ReLU(W x), x' = ReLU(W^T h + b): neurons exist and can be polysemantic.
    HiddenRelu,
}

impl ModelKind {
    /// The name used in configs, JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::ReluOutput => "relu-output",
            ModelKind::Linear => "linear",
            ModelKind::HiddenRelu => "hidden-relu",
        }
    }

    /// Whether the hidden layer has a ReLU.
    pub fn hidden_relu(self) -> bool {
        self == ModelKind::HiddenRelu
    }

    /// Whether the output has a ReLU.
    pub fn output_relu(self) -> bool {
        self != ModelKind::Linear
    }
}

/// One instance's data distribution and loss weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// Probability S that a feature is 0.
    pub sparsity: f64,
    /// Importance I_i of each feature.
    pub importance: Vec<f64>,
}

impl Instance {
    /// Importance I_i = r^i over `n` features.
    pub fn decaying(n: usize, sparsity: f64, r: f64) -> Instance {
        Instance {
            sparsity,
            importance: (0..n).map(|i| r.powi(i as i32)).collect(),
        }
    }

    /// 1 - S.
    pub fn density(&self) -> f64 {
        1.0 - self.sparsity
    }
}

/// Trained (or initial) parameters of every instance, row-major on the host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToyModel {
    /// Which model.
    pub kind: ModelKind,
    /// Features n.
    pub n: usize,
    /// Hidden dimensions m.
    pub m: usize,
    /// The instances' data distributions.
    pub instances: Vec<Instance>,
    /// W of every instance: [instances, m, n].
    pub w: Vec<f32>,
    /// b of every instance: [instances, n].
    pub b: Vec<f32>,
}

impl ToyModel {
    /// W of instance `k`: [m, n] row-major (column i is feature i's direction W_i).
    pub fn w_of(&self, k: usize) -> &[f32] {
        &self.w[k * self.m * self.n..(k + 1) * self.m * self.n]
    }

    /// b of instance `k`: [n].
    pub fn b_of(&self, k: usize) -> &[f32] {
        &self.b[k * self.n..(k + 1) * self.n]
    }

    /// Plain host forward of instance `k` on one sample: x [n] -> (h [m], x' [n]).
    pub fn forward_one(&self, k: usize, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let (w, b, n) = (self.w_of(k), self.b_of(k), self.n);
        let mut h: Vec<f32> = w
            .chunks_exact(n)
            .map(|row| row.iter().zip(x).map(|(a, v)| a * v).sum())
            .collect();
        if self.kind.hidden_relu() {
            h.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        let mut out = b.to_vec();
        for (hj, row) in h.iter().zip(w.chunks_exact(n)) {
            out.iter_mut().zip(row).for_each(|(o, a)| *o += hj * a);
        }
        if self.kind.output_relu() {
            out.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        (h, out)
    }

    /// Plain host loss of instance `k` over `rows` samples x [rows, n]: mean over rows of
    /// sum_i I_i (x_i - x'_i)^2.
    pub fn loss_one(&self, k: usize, x: &[f32]) -> f64 {
        let imp = &self.instances[k].importance;
        let rows = x.len() / self.n;
        let total: f64 = x
            .chunks_exact(self.n)
            .map(|row| {
                let (_, out) = self.forward_one(k, row);
                row.iter()
                    .zip(&out)
                    .zip(imp)
                    .map(|((a, b), i)| i * ((a - b) as f64).powi(2))
                    .sum::<f64>()
            })
            .sum();
        total / rows as f64
    }
}
