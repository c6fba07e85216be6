//! SAE parameters as plain host buffers (what Adam updates and checkpoints hold), their initialisation,
//! the unit-norm decoder constraint, and folding the input scale into the saved [`sae_model::Sae`].

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::Result;

/// Parameters of the SAE being trained, in scaled-input space.
///
/// Encode: z = (x - b_dec) W_enc + b_enc; decode: x_hat = f W_dec + b_dec. A transcoder reads x
/// uncentred (z = x W_enc + b_enc) and predicts a target y: y_hat = f W_dec + b_dec (+ x W_skip).
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Input width.
    pub d_in: usize,
    /// Dictionary size.
    pub d_sae: usize,
    /// Output width (d_in for an autoencoder).
    pub d_out: usize,
    /// A transcoder: the input is not centred by b_dec, and the output is another hook's rows.
    pub transcoder: bool,
    /// W_enc: [d_in, d_sae], row-major.
    pub w_enc: Vec<f32>,
    /// b_enc: [d_sae].
    pub b_enc: Vec<f32>,
    /// W_dec: [d_sae, d_out], row-major (one row per latent).
    pub w_dec: Vec<f32>,
    /// b_dec: [d_out].
    pub b_dec: Vec<f32>,
    /// JumpReLU log-thresholds: [d_sae] (None for other architectures).
    pub log_threshold: Option<Vec<f32>>,
    /// Skip transcoder: W_skip [d_in, d_out] (y_hat += x W_skip).
    pub w_skip: Option<Vec<f32>>,
}

/// Names of the parameter buffers, in the order of [`Params::buffers`].
pub const PARAM_NAMES: [&str; 6] = [
    "W_enc",
    "b_enc",
    "W_dec",
    "b_dec",
    "log_threshold",
    "W_skip",
];

impl Params {
    /// All-zero parameters of the same shapes (gradients, Adam moments).
    pub fn zeros_like(&self) -> Params {
        Params {
            d_in: self.d_in,
            d_sae: self.d_sae,
            d_out: self.d_out,
            transcoder: self.transcoder,
            w_enc: vec![0.0; self.w_enc.len()],
            b_enc: vec![0.0; self.b_enc.len()],
            w_dec: vec![0.0; self.w_dec.len()],
            b_dec: vec![0.0; self.b_dec.len()],
            log_threshold: self.log_threshold.as_ref().map(|t| vec![0.0; t.len()]),
            w_skip: self.w_skip.as_ref().map(|t| vec![0.0; t.len()]),
        }
    }

    /// Random unit decoder rows scaled by `dec_norm`, W_enc = W_dec^T, b_enc = 0, b_dec = `b_dec`.
    pub fn init(
        d_in: usize,
        d_sae: usize,
        b_dec: Vec<f32>,
        dec_norm: f32,
        log_threshold: Option<f32>,
        seed: u64,
    ) -> Params {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5AE_1417);
        let w_dec = random_rows(&mut rng, d_sae, d_in, dec_norm);
        let w_enc = transpose(&w_dec, d_sae, d_in);
        Params {
            d_in,
            d_sae,
            d_out: d_in,
            transcoder: false,
            w_enc,
            b_enc: vec![0.0; d_sae],
            w_dec,
            b_dec,
            log_threshold: log_threshold.map(|t| vec![t; d_sae]),
            w_skip: None,
        }
    }

    /// A transcoder from d_in to d_out = `b_dec.len()`: random unit decoder rows (scaled by
    /// `dec_norm`) in the output space and, drawn after them, random unit encoder columns in the
    /// input space (W_enc = W_dec^T is impossible when d_out != d_in); b_enc = 0; W_skip = 0 when
    /// `skip`.
    pub fn init_transcoder(
        d_in: usize,
        d_sae: usize,
        b_dec: Vec<f32>,
        init: TranscoderInit,
        seed: u64,
    ) -> Params {
        let d_out = b_dec.len();
        let mut rng = StdRng::seed_from_u64(seed ^ 0x7C0D_E125);
        let w_dec = random_rows(&mut rng, d_sae, d_out, init.dec_norm);
        let w_enc_t = random_rows(&mut rng, d_sae, d_in, 1.0);
        Params {
            d_in,
            d_sae,
            d_out,
            transcoder: true,
            w_enc: transpose(&w_enc_t, d_sae, d_in),
            b_enc: vec![0.0; d_sae],
            w_dec,
            b_dec,
            log_threshold: init.log_threshold.map(|t| vec![t; d_sae]),
            w_skip: init.skip.then(|| vec![0.0; d_in * d_out]),
        }
    }

    /// The buffers in [`PARAM_NAMES`] order (log_threshold only when present).
    pub fn buffers(&self) -> Vec<(&'static str, &Vec<f32>)> {
        let mut v = vec![
            (PARAM_NAMES[0], &self.w_enc),
            (PARAM_NAMES[1], &self.b_enc),
            (PARAM_NAMES[2], &self.w_dec),
            (PARAM_NAMES[3], &self.b_dec),
        ];
        if let Some(t) = &self.log_threshold {
            v.push((PARAM_NAMES[4], t));
        }
        if let Some(t) = &self.w_skip {
            v.push((PARAM_NAMES[5], t));
        }
        v
    }

    /// Mutable buffers in [`PARAM_NAMES`] order.
    pub fn buffers_mut(&mut self) -> Vec<(&'static str, &mut Vec<f32>)> {
        let mut v = vec![
            (PARAM_NAMES[0], &mut self.w_enc),
            (PARAM_NAMES[1], &mut self.b_enc),
            (PARAM_NAMES[2], &mut self.w_dec),
            (PARAM_NAMES[3], &mut self.b_dec),
        ];
        if let Some(t) = &mut self.log_threshold {
            v.push((PARAM_NAMES[4], t));
        }
        if let Some(t) = &mut self.w_skip {
            v.push((PARAM_NAMES[5], t));
        }
        v
    }

    /// The shape of buffer `name`.
    pub fn shape_of(&self, name: &str) -> Vec<usize> {
        match name {
            "W_enc" => vec![self.d_in, self.d_sae],
            "W_dec" => vec![self.d_sae, self.d_out],
            "b_dec" => vec![self.d_out],
            "W_skip" => vec![self.d_in, self.d_out],
            _ => vec![self.d_sae],
        }
    }

    /// Scales every decoder row to unit norm.
    pub fn normalize_decoder_rows(&mut self) {
        for row in self.w_dec.chunks_mut(self.d_out) {
            let n = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            if n > 0.0 {
                row.iter_mut().for_each(|v| *v /= n);
            }
        }
    }

    /// Builds the inference SAE for raw (unscaled) inputs: the model saw `c * x` and predicted
    /// `c_out * y` (c_out = c for an autoencoder), so W_enc' = c W_enc, W_dec' = W_dec / c_out,
    /// b_dec' = b_dec / c_out, W_skip' = W_skip c / c_out (b_enc and thresholds unchanged).
    pub fn to_tensors(&self, c: f32, c_out: f32) -> Result<FoldedTensors> {
        let dev = Device::Cpu;
        let w_enc: Vec<f32> = self.w_enc.iter().map(|v| v * c).collect();
        let w_dec: Vec<f32> = self.w_dec.iter().map(|v| v / c_out).collect();
        let b_dec: Vec<f32> = self.b_dec.iter().map(|v| v / c_out).collect();
        let w_skip = match &self.w_skip {
            Some(w) => {
                let w: Vec<f32> = w.iter().map(|v| v * c / c_out).collect();
                Some(Tensor::from_vec(w, (self.d_in, self.d_out), &dev)?)
            }
            None => None,
        };
        Ok(FoldedTensors {
            w_enc: Tensor::from_vec(w_enc, (self.d_in, self.d_sae), &dev)?,
            b_enc: Tensor::from_slice(&self.b_enc, self.d_sae, &dev)?,
            w_dec: Tensor::from_vec(w_dec, (self.d_sae, self.d_out), &dev)?,
            b_dec: Tensor::from_vec(b_dec, self.d_out, &dev)?,
            w_skip,
        })
    }
}

/// How a transcoder starts (see [`Params::init_transcoder`]).
#[derive(Clone, Copy, Debug)]
pub struct TranscoderInit {
    /// Norm of the decoder rows.
    pub dec_norm: f32,
    /// JumpReLU's initial log-threshold.
    pub log_threshold: Option<f32>,
    /// With a skip connection W_skip (zero at the start).
    pub skip: bool,
}

/// `rows` random directions of width `d` (Box-Muller normals, normalised to `norm`).
fn random_rows(rng: &mut StdRng, rows: usize, d: usize, norm: f32) -> Vec<f32> {
    let mut w = vec![0f32; rows * d];
    for row in w.chunks_mut(d) {
        for v in row.iter_mut() {
            let u1: f64 = rng.random::<f64>().max(1e-300);
            let u2: f64 = rng.random::<f64>();
            *v = ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32;
        }
        let n = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|v| *v *= norm / n);
    }
    w
}

/// The transpose [cols, rows] of the row-major matrix `src` [rows, cols].
pub(crate) fn transpose(src: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = src[r * cols + c];
        }
    }
    out
}

/// Weights with the input scale folded in (they act on raw activations).
pub struct FoldedTensors {
    /// W_enc: [d_in, d_sae].
    pub w_enc: Tensor,
    /// b_enc: [d_sae].
    pub b_enc: Tensor,
    /// W_dec: [d_sae, d_in].
    pub w_dec: Tensor,
    /// b_dec: [d_out].
    pub b_dec: Tensor,
    /// W_skip: [d_in, d_out] (skip transcoders).
    pub w_skip: Option<Tensor>,
}

/// Removes from each decoder-row gradient its component parallel to the (unit) row:
/// g_i <- g_i - (g_i . w_i) w_i. w, g: [d_sae, d_in].
pub fn project_out_parallel(w_dec: &[f32], g_dec: &mut [f32], d_in: usize) {
    for (w, g) in w_dec.chunks(d_in).zip(g_dec.chunks_mut(d_in)) {
        let ww: f32 = w.iter().map(|v| v * v).sum();
        if ww <= 0.0 {
            continue;
        }
        let dot: f32 = w.iter().zip(g.iter()).map(|(a, b)| a * b).sum::<f32>() / ww;
        g.iter_mut().zip(w).for_each(|(gv, wv)| *gv -= dot * wv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_removes_parallel_component() {
        // Row 0 = e_x, gradient (3, 4) -> (0, 4). Row 1 = (0.6, 0.8), gradient (1, 0):
        // dot 0.6 -> (1 - 0.36, -0.48) = (0.64, -0.48), orthogonal to the row.
        let w = [1.0, 0.0, 0.6, 0.8];
        let mut g = [3.0, 4.0, 1.0, 0.0];
        project_out_parallel(&w, &mut g, 2);
        let want = [0.0, 4.0, 0.64, -0.48];
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{g:?}");
        }
        assert!((g[2] * w[2] + g[3] * w[3]).abs() < 1e-6);
    }

    #[test]
    fn init_ties_encoder_to_decoder_with_unit_rows() {
        let p = Params::init(3, 5, vec![0.5; 3], 1.0, None, 7);
        for i in 0..5 {
            let row = &p.w_dec[i * 3..i * 3 + 3];
            let n: f32 = row.iter().map(|v| v * v).sum();
            assert!((n - 1.0).abs() < 1e-5);
            for (j, v) in row.iter().enumerate() {
                assert_eq!(p.w_enc[j * 5 + i], *v);
            }
        }
        assert_eq!(p.b_enc, vec![0.0; 5]);
        assert_eq!(p.b_dec, vec![0.5; 3]);
        assert_eq!(p, Params::init(3, 5, vec![0.5; 3], 1.0, None, 7));
    }
}
