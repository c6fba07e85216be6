//! Hand-derived gradients and AdamW for one toy-model instance on host buffers (gemm for the
//! products); instances step in parallel. candle autograd (`train::autograd_grads`) is the
//! reference, and a test checks that both give the same loss and gradients.
//!
//! Per instance, batch X [B, n]: H = X W^T [B, m]; A = ReLU(H) (hidden-ReLU) or H;
//! Z = A W + b [B, n]; Y = ReLU(Z) or Z; L = (1/B) sum I_i (X - Y)^2.
//! dZ = (2/B) I (Y - X) [Z > 0]; db = sum_B dZ; dW = A^T dZ + dH^T X with dH = (dZ W^T) [H > 0].

use crate::kernels::matmul;
use crate::model::ModelKind;

/// Loss and gradients of one instance.
#[derive(Clone, Debug, Default)]
pub struct Grads {
    /// Loss of the batch.
    pub loss: f64,
    /// dL/dW [m, n].
    pub w: Vec<f32>,
    /// dL/db [n].
    pub b: Vec<f32>,
}

/// Scratch buffers of one instance's step.
#[derive(Clone, Debug, Default)]
pub struct Scratch {
    h: Vec<f32>,
    a: Vec<f32>,
    z: Vec<f32>,
    da: Vec<f32>,
}

/// Loss and gradients of one instance: x [B, n], w [m, n], b [n], importance [n].
#[allow(clippy::too_many_arguments)]
pub fn grads(
    kind: ModelKind,
    n: usize,
    m: usize,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    imp: &[f32],
    s: &mut Scratch,
    g: &mut Grads,
) {
    let batch = x.len() / n;
    s.h.resize(batch * m, 0.0);
    s.a.resize(batch * m, 0.0);
    s.z.resize(batch * n, 0.0);
    s.da.resize(batch * m, 0.0);
    g.w.resize(m * n, 0.0);
    g.b.resize(n, 0.0);
    matmul(&mut s.h, x, false, w, true, batch, n, m, false);
    if kind.hidden_relu() {
        s.a.iter_mut().zip(&s.h).for_each(|(a, h)| *a = h.max(0.0));
    } else {
        s.a.copy_from_slice(&s.h);
    }
    matmul(&mut s.z, &s.a, false, w, false, batch, m, n, false);
    // z becomes dZ in place; the loss on the way.
    let scale = 2.0 / batch as f32;
    let mut loss = 0f64;
    g.b.fill(0.0);
    let relu_out = kind.output_relu();
    for (zr, xr) in s.z.chunks_exact_mut(n).zip(x.chunks_exact(n)) {
        for i in 0..n {
            let zi = zr[i] + b[i];
            let y = if relu_out { zi.max(0.0) } else { zi };
            let e = y - xr[i];
            loss += (imp[i] * e * e) as f64;
            let d = if relu_out && zi <= 0.0 {
                0.0
            } else {
                scale * imp[i] * e
            };
            zr[i] = d;
            g.b[i] += d;
        }
    }
    g.loss = loss / batch as f64;
    // dW = A^T dZ.
    matmul(&mut g.w, &s.a, true, &s.z, false, m, batch, n, false);
    // dA = dZ W^T; dH = dA [H > 0]; dW += dH^T X.
    matmul(&mut s.da, &s.z, false, w, true, batch, n, m, false);
    if kind.hidden_relu() {
        s.da.iter_mut().zip(&s.h).for_each(|(d, h)| {
            if *h <= 0.0 {
                *d = 0.0
            }
        });
    }
    matmul(&mut g.w, &s.da, true, x, false, m, batch, n, true);
}

/// AdamW state of one parameter buffer (PyTorch / candle semantics: decoupled decay
/// p *= 1 - lr wd, then p -= lr m_hat / (sqrt(v_hat) + eps)).
#[derive(Clone, Debug)]
pub struct AdamW {
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

/// Adam's fixed constants (the paper's PyTorch defaults).
pub const BETA1: f64 = 0.9;
/// Second-moment decay.
pub const BETA2: f64 = 0.999;
/// Denominator epsilon.
pub const EPS: f64 = 1e-8;

impl AdamW {
    /// Zero moments for `len` parameters.
    pub fn new(len: usize) -> AdamW {
        AdamW {
            m: vec![0.0; len],
            v: vec![0.0; len],
            t: 0,
        }
    }

    /// One update of `p` with gradient `g`.
    pub fn step(&mut self, p: &mut [f32], g: &[f32], lr: f64, wd: f64) {
        self.t += 1;
        let c1 = (1.0 / (1.0 - BETA1.powi(self.t))) as f32;
        let c2 = (1.0 / (1.0 - BETA2.powi(self.t))) as f32;
        let (b1, b2, eps) = (BETA1 as f32, BETA2 as f32, EPS as f32);
        let (lr, decay) = (lr as f32, (1.0 - lr * wd) as f32);
        for (((p, g), m), v) in p.iter_mut().zip(g).zip(&mut self.m).zip(&mut self.v) {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            let upd = (*m * c1) / ((*v * c2).sqrt() + eps);
            *p = *p * decay - lr * upd;
        }
    }
}
