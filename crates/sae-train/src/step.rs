//! The training step contract: (x, params, context) -> (loss parts, firing statistics), gradients
//! written into a caller-owned [`Grads`] (allocated once per run). Implementations:
//! [`crate::autograd::AutogradStep`] (candle autograd, the reference for every architecture),
//! [`crate::sparse::SparseTopKStep`] (sparse hand-derived backward for the TopK family) and
//! [`crate::dense_step::DenseStep`] (ReLU-L1, JumpReLU).

use crate::error::Result;
use crate::params::{transpose, Params};

/// What a step needs besides the batch and the parameters.
#[derive(Clone, Copy, Debug)]
pub struct StepContext<'a> {
    /// dead[j]: latent j has not fired within the dead-token window (AuxK targets these).
    pub dead: &'a [bool],
    /// Current sparsity coefficient (ReLU-L1 lambda after warm-up, JumpReLU L0 coefficient).
    pub sparsity_coef: f64,
    /// A transcoder's target rows y [batch, d_out] (scaled), row-aligned with x; None for an
    /// autoencoder, whose target is x itself.
    pub target: Option<&'a [f32]>,
    /// Matryoshka: the inner prefixes' loss weights at this step (the config's weight ramp);
    /// None: the config's `group_weights`.
    pub prefix_weights: Option<&'a [f64]>,
}

/// Loss parts, gradients and firing statistics of one batch.
#[derive(Clone, Debug)]
pub struct StepOutput {
    /// Total loss that was differentiated.
    pub loss: f64,
    /// Reconstruction term of the loss.
    pub recon: f64,
    /// Auxiliary term: AuxK loss (TopK family) or sparsity penalty (ReLU-L1, JumpReLU), unweighted
    /// for AuxK, weighted for the penalties.
    pub aux: f64,
    /// Fraction of variance unexplained on this batch: sum ||x - x_hat||^2 / sum ||x - mean(x)||^2.
    pub fvu: f64,
    /// Mean number of active latents per row.
    pub l0: f64,
    /// fired[j]: rows of this batch on which latent j was active.
    pub fired: Vec<u32>,
    /// BatchTopK: the smallest activation kept in this batch (feeds the inference threshold).
    pub min_kept: Option<f32>,
}

/// Gradient of the loss with respect to every parameter. The encoder's is stored latent-major
/// (dW_enc^T, [d_sae, d_in]): every fast backward produces it per latent, and the optimizer reads it
/// tile by tile.
#[derive(Clone, Debug, PartialEq)]
pub struct Grads {
    /// Input width.
    pub d_in: usize,
    /// Dictionary size.
    pub d_sae: usize,
    /// Output width.
    pub d_out: usize,
    /// dW_enc^T: [d_sae, d_in].
    pub w_enc_t: Vec<f32>,
    /// db_enc: [d_sae].
    pub b_enc: Vec<f32>,
    /// dW_dec: [d_sae, d_out].
    pub w_dec: Vec<f32>,
    /// db_dec: [d_out].
    pub b_dec: Vec<f32>,
    /// d log_threshold: [d_sae] (JumpReLU only).
    pub log_threshold: Option<Vec<f32>>,
    /// dW_skip: [d_in, d_out] (skip transcoders only).
    pub w_skip: Option<Vec<f32>>,
}

impl Grads {
    /// All-zero gradients for parameters shaped like `p`.
    pub fn zeros_for(p: &Params) -> Grads {
        Grads {
            d_in: p.d_in,
            d_sae: p.d_sae,
            d_out: p.d_out,
            w_enc_t: vec![0.0; p.d_in * p.d_sae],
            b_enc: vec![0.0; p.d_sae],
            w_dec: vec![0.0; p.d_out * p.d_sae],
            b_dec: vec![0.0; p.d_out],
            log_threshold: p.log_threshold.as_ref().map(|t| vec![0.0; t.len()]),
            w_skip: p.w_skip.as_ref().map(|t| vec![0.0; t.len()]),
        }
    }

    /// The gradients in the layout of [`Params`] (W_enc as [d_in, d_sae]); `transcoder` as in the
    /// parameters they belong to.
    pub fn to_params(&self, transcoder: bool) -> Params {
        let (d_in, d_sae) = (self.d_in, self.d_sae);
        Params {
            d_in,
            d_sae,
            d_out: self.d_out,
            transcoder,
            w_enc: transpose(&self.w_enc_t, d_sae, d_in),
            b_enc: self.b_enc.clone(),
            w_dec: self.w_dec.clone(),
            b_dec: self.b_dec.clone(),
            log_threshold: self.log_threshold.clone(),
            w_skip: self.w_skip.clone(),
        }
    }

    /// Gradients given in the layout of [`Params`].
    pub fn from_params(g: &Params) -> Grads {
        let (d_in, d_sae) = (g.d_in, g.d_sae);
        Grads {
            d_in,
            d_sae,
            d_out: g.d_out,
            w_enc_t: transpose(&g.w_enc, d_in, d_sae),
            b_enc: g.b_enc.clone(),
            w_dec: g.w_dec.clone(),
            b_dec: g.b_dec.clone(),
            log_threshold: g.log_threshold.clone(),
            w_skip: g.w_skip.clone(),
        }
    }
}

/// One forward + backward pass. x: [batch, d_in] row-major, already scaled.
pub trait Step {
    /// Computes the loss parts of `params` on the batch `x` and overwrites `grads` with the
    /// gradients (`grads` must be shaped like `params`).
    fn run(
        &mut self,
        x: &[f32],
        params: &Params,
        ctx: &StepContext<'_>,
        grads: &mut Grads,
    ) -> Result<StepOutput>;
}

/// sum over rows of ||x_r - mean(x)||^2 for x: [rows, d] (the FVU denominator), in f64.
pub fn total_variance(x: &[f32], d: usize) -> f64 {
    let n = x.len() / d.max(1);
    if n == 0 {
        return 0.0;
    }
    let mut mean = vec![0f64; d];
    for r in x.chunks(d) {
        mean.iter_mut().zip(r).for_each(|(m, v)| *m += *v as f64);
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    x.chunks(d)
        .map(|r| {
            r.iter()
                .zip(&mean)
                .map(|(v, m)| (*v as f64 - m).powi(2))
                .sum::<f64>()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_variance_by_hand() {
        // Rows (0,0), (2,0), (1,3): mean (1,1); distances^2 = 2, 2, 4 -> 8.
        assert!((total_variance(&[0., 0., 2., 0., 1., 3.], 2) - 8.0).abs() < 1e-12);
    }
}
