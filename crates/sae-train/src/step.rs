//! The training step contract: (x, params, context) -> (loss parts, gradients, firing statistics).
//! Implementations: [`crate::autograd::AutogradStep`] (candle autograd, the reference for every
//! architecture) and [`crate::sparse_topk::SparseTopKStep`] (hand-derived backward for the TopK family).

use crate::error::Result;
use crate::params::Params;

/// What a step needs besides the batch and the parameters.
#[derive(Clone, Copy, Debug)]
pub struct StepContext<'a> {
    /// dead[j]: latent j has not fired within the dead-token window (AuxK targets these).
    pub dead: &'a [bool],
    /// Current sparsity coefficient (ReLU-L1 lambda after warm-up, JumpReLU L0 coefficient).
    pub sparsity_coef: f64,
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
    /// Gradient of `loss` with respect to every parameter (same layout as [`Params`]).
    pub grads: Params,
}

/// One forward + backward pass. x: [batch, d_in] row-major, already scaled.
pub trait Step {
    /// Computes the loss parts and gradients of `params` on the batch `x`.
    fn run(&self, x: &[f32], params: &Params, ctx: &StepContext<'_>) -> Result<StepOutput>;
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
