//! The SAEs in the linearised model: input normalization frozen at the clean pass's row statistics
//! (like the model's own norms), so that pre-activations are affine in the hook's value and a latent's
//! value at the hook is a_i W_dec,i times its row's frozen output scale.
//!
//! - `layer_norm`: in (x - mean) / (std + eps), out y std + mean: a latent writes a_i W_dec,i std.
//! - `constant_norm_rescale`: in x c, out y / c: a latent writes a_i W_dec,i / c.
//! - A skip connection's x W_skip is part of the error node (x - restore(decode(f))): the "error/skip"
//!   node of the hook, held like every error.
//! - An SAE at `blocks.0.hook_resid_pre` reads the token embeddings: its latents' pre-activations are
//!   the tokens' (only) targets, and the hook's value downstream is its latents + error.

use candle_core::{Tensor, Var};
use sae_model::RowScale;

use super::{Replacement, EMBED};
use crate::error::Result;

impl Replacement<'_> {
    /// SAE `sae`'s pre-activations [t, d_sae] of x [t, d_in], its normalization frozen.
    pub(crate) fn frozen_pre_acts(&self, sae: usize, x: &Tensor) -> Result<Tensor> {
        Ok(self.saes[sae]
            .sae
            .pre_acts_with(x, &self.states[sae].scale)?)
    }

    /// The factor [t, 1] by which SAE `sae`'s decoder output is mapped back at each position, None for
    /// 1 (no normalization, or a transcoder).
    pub(crate) fn out_scale(&self, sae: usize) -> Result<Option<Tensor>> {
        if self.saes[sae].sae.cfg.is_transcoder() {
            return Ok(None);
        }
        Ok(match &self.states[sae].scale {
            RowScale::Identity => None,
            RowScale::LayerNorm { std, .. } => Some(std.clone()),
            RowScale::Rescale { coeff } => Some(coeff.recip()?),
        })
    }

    /// g [t, width] . (W_dec,i x the row's output scale) for every (position, latent): [t, d_sae].
    pub(crate) fn decoder_dots(&self, sae: usize, g: &Tensor) -> Result<Vec<Vec<f32>>> {
        let gw = g.matmul(&self.saes[sae].sae.w_dec.t()?)?;
        let gw = match self.out_scale(sae)? {
            Some(s) => gw.broadcast_mul(&s)?,
            None => gw,
        };
        Ok(gw.to_vec2()?)
    }

    /// The value latent `latent` of SAE `sae` writes at `position`: a_i W_dec,i (x the output scale).
    pub(crate) fn latent_vector(
        &self,
        sae: usize,
        position: usize,
        latent: usize,
    ) -> Result<Tensor> {
        let a = self.states[sae].acts.get(position)?.get(latent)?;
        self.decoder_row(sae, position, latent, &a)
    }

    /// W_dec,i x `a` (a scalar tensor) x the output scale at `position`.
    pub(crate) fn decoder_row(
        &self,
        sae: usize,
        position: usize,
        latent: usize,
        a: &Tensor,
    ) -> Result<Tensor> {
        let d = self.saes[sae].sae.w_dec.get(latent)?.broadcast_mul(a)?;
        Ok(match self.out_scale(sae)? {
            Some(s) => d.broadcast_mul(&s.get(position)?)?,
            None => d,
        })
    }

    /// The SAE reading the token embeddings, if any.
    pub(crate) fn embed_sae(&self) -> Option<usize> {
        self.saes.iter().position(|s| s.hook == EMBED)
    }

    /// A gradient leaf holding the embeddings [1, t, d] (as the hooks' leaves): the tokens' value as
    /// the input of the SAE at the embeddings.
    pub(crate) fn token_leaf(&self) -> Result<Var> {
        Ok(Var::from_tensor(&self.x0.unsqueeze(0)?)?)
    }
}
