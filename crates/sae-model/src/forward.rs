//! Encoding and decoding, as SAELens' `encode` / `decode` / `forward` do them:
//!
//! ```text
//! sae_in  = norm_in(x) - b_dec * apply_b_dec_to_input          (x: [n, d_in])
//! z       = sae_in W_enc + b_enc                                 [n, d_sae]
//! f       = act(z)   (gated: [sae_in W_enc + b_gate > 0] * relu(sae_in W_mag + b_mag))
//! decode  = f W_dec + b_dec                                      [n, d_out]
//! forward = norm_out(decode) (+ x W_skip for a skip transcoder)
//! ```
//!
//! `norm_out` undoes the row statistics `norm_in` took (layer_norm, constant_norm_rescale); a
//! transcoder's output belongs to another hook, so like SAELens it is not mapped back.

use candle_core::{DType, Device, Tensor};

use crate::topk::{groupmax_relu_rows, topk_relu_rows};
use crate::{Activation, InputNorm, Sae, SaeError};

/// Added to the row std by layer_norm on the way in (SAELens' eps).
const LAYER_NORM_EPS: f64 = 1e-5;

/// Per-row statistics taken by the input normalization, needed to map the output back.
#[derive(Clone, Debug)]
pub enum RowScale {
    /// No normalization, or one folded into the weights.
    Identity,
    /// layer_norm: the rows' means and stds, [n, 1] each.
    LayerNorm {
        /// Row means.
        mean: Tensor,
        /// Row stds (Bessel-corrected).
        std: Tensor,
    },
    /// constant_norm_rescale: sqrt(d_in) / ||x|| per row, [n, 1].
    Rescale {
        /// The factor each row was multiplied by.
        coeff: Tensor,
    },
}

/// The result of [`Sae::forward_full`].
#[derive(Clone, Debug)]
pub struct ForwardOutput {
    /// Latent activations: [n, d_sae], dense with zeros where a latent is off.
    pub acts: Tensor,
    /// The output: the reconstruction of x (autoencoders) or the prediction of the target
    /// hook (transcoders): [n, d_out].
    pub out: Tensor,
}

impl Sae {
    fn check_width(&self, x: &Tensor) -> Result<(), SaeError> {
        let (_, d) = x.dims2()?;
        if d != self.cfg.d_in {
            return Err(SaeError::InputWidth {
                what: "encoder input",
                expected: self.cfg.d_in,
                found: d,
            });
        }
        Ok(())
    }

    /// x: [n, d_in] -> the normalized rows and the statistics to map an output back.
    pub fn normalize(&self, x: &Tensor) -> Result<(Tensor, RowScale), SaeError> {
        self.check_width(x)?;
        Ok(match self.cfg.normalize_activations {
            InputNorm::None | InputNorm::ExpectedAverageOnlyIn => (x.clone(), RowScale::Identity),
            InputNorm::LayerNorm => {
                let d = self.cfg.d_in;
                let mean = x.mean_keepdim(1)?;
                let xc = x.broadcast_sub(&mean)?;
                let var = (xc.sqr()?.sum_keepdim(1)? / (d as f64 - 1.0))?;
                let std = var.sqrt()?;
                let xn = xc.broadcast_div(&(&std + LAYER_NORM_EPS)?)?;
                (xn, RowScale::LayerNorm { mean, std })
            }
            InputNorm::ConstantNormRescale => {
                let norm = x.sqr()?.sum_keepdim(1)?.sqrt()?;
                let coeff = norm.recip()?.affine((self.cfg.d_in as f64).sqrt(), 0.0)?;
                (x.broadcast_mul(&coeff)?, RowScale::Rescale { coeff })
            }
        })
    }

    /// x: [n, d_in] normalized with row statistics taken before (`scale` from [`Sae::normalize`] of
    /// other rows, e.g. a clean pass): affine in x, the normalization frozen.
    pub fn normalize_with(&self, x: &Tensor, scale: &RowScale) -> Result<Tensor, SaeError> {
        self.check_width(x)?;
        Ok(match scale {
            RowScale::Identity => x.clone(),
            RowScale::LayerNorm { mean, std } => x
                .broadcast_sub(mean)?
                .broadcast_div(&(std + LAYER_NORM_EPS)?)?,
            RowScale::Rescale { coeff } => x.broadcast_mul(coeff)?,
        })
    }

    /// [`Sae::pre_acts`] with the input normalization frozen at `scale` (see [`Sae::normalize_with`]).
    pub fn pre_acts_with(&self, x: &Tensor, scale: &RowScale) -> Result<Tensor, SaeError> {
        let sae_in = self.sae_in(&self.normalize_with(x, scale)?)?;
        Ok(match &self.gate {
            Some(g) => sae_in.matmul(&g.w_mag)?.broadcast_add(&g.b_mag)?,
            None => sae_in.matmul(&self.w_enc)?.broadcast_add(&self.b_enc)?,
        })
    }

    /// Maps a decoder output back through the statistics `scale` took (autoencoders only).
    pub fn restore(&self, y: &Tensor, scale: &RowScale) -> Result<Tensor, SaeError> {
        if self.cfg.is_transcoder() {
            return Ok(y.clone());
        }
        Ok(match scale {
            RowScale::Identity => y.clone(),
            RowScale::LayerNorm { mean, std } => y.broadcast_mul(std)?.broadcast_add(mean)?,
            RowScale::Rescale { coeff } => y.broadcast_div(coeff)?,
        })
    }

    /// Normalized rows minus `b_dec` when `apply_b_dec_to_input`: the encoders' input.
    fn sae_in(&self, xn: &Tensor) -> Result<Tensor, SaeError> {
        Ok(if self.cfg.apply_b_dec_to_input {
            xn.broadcast_sub(&self.b_dec)?
        } else {
            xn.clone()
        })
    }

    /// x: [n, d_in] -> [n, d_sae]: the pre-activations SAELens hooks as `hook_sae_acts_pre`,
    /// `sae_in W_enc + b_enc` (for a gated SAE, the magnitude path `sae_in W_mag + b_mag`).
    pub fn pre_acts(&self, x: &Tensor) -> Result<Tensor, SaeError> {
        let (xn, _) = self.normalize(x)?;
        let sae_in = self.sae_in(&xn)?;
        Ok(match &self.gate {
            Some(g) => sae_in.matmul(&g.w_mag)?.broadcast_add(&g.b_mag)?,
            None => sae_in.matmul(&self.w_enc)?.broadcast_add(&self.b_enc)?,
        })
    }

    /// Normalized rows -> latent activations.
    fn encode_normalized(&self, xn: &Tensor) -> Result<Tensor, SaeError> {
        let sae_in = self.sae_in(xn)?;
        let z = sae_in.matmul(&self.w_enc)?.broadcast_add(&self.b_enc)?;
        match self.cfg.activation {
            Activation::Relu => Ok(z.relu()?),
            Activation::JumpRelu => {
                let theta = self
                    .threshold
                    .as_ref()
                    .ok_or_else(|| SaeError::Invalid("jumprelu SAE without a threshold".into()))?;
                let on = z.broadcast_gt(theta)?.to_dtype(DType::F32)?;
                Ok((z.relu()? * on)?)
            }
            Activation::TopK { k } => {
                let (n, d_sae) = z.dims2()?;
                let values = z.flatten_all()?.to_vec1::<f32>()?;
                let out = topk_relu_rows(&values, d_sae, k);
                Ok(Tensor::from_vec(out, (n, d_sae), &Device::Cpu)?)
            }
            Activation::GroupMax { k } => {
                let (n, d_sae) = z.dims2()?;
                let values = z.flatten_all()?.to_vec1::<f32>()?;
                let out = groupmax_relu_rows(&values, d_sae, k);
                Ok(Tensor::from_vec(out, (n, d_sae), &Device::Cpu)?)
            }
            Activation::Gated => {
                let g = self.gate.as_ref().ok_or_else(|| {
                    SaeError::Invalid("gated SAE without its magnitude path".into())
                })?;
                let open = z.gt(0f32)?.to_dtype(DType::F32)?;
                let mag = sae_in.matmul(&g.w_mag)?.broadcast_add(&g.b_mag)?.relu()?;
                Ok((open * mag)?)
            }
        }
    }

    /// x: [n, d_in] -> f: [n, d_sae], dense with zeros where a latent is off.
    pub fn encode(&self, x: &Tensor) -> Result<Tensor, SaeError> {
        let (xn, _) = self.normalize(x)?;
        self.encode_normalized(&xn)
    }

    /// f: [n, d_sae] -> `f W_dec + b_dec`: [n, d_out], in the normalized space and without the
    /// skip connection (see [`Sae::decode_for_input`] and [`Sae::forward`]).
    pub fn decode(&self, f: &Tensor) -> Result<Tensor, SaeError> {
        let (_, d) = f.dims2()?;
        if d != self.cfg.d_sae {
            return Err(SaeError::InputWidth {
                what: "decoder input",
                expected: self.cfg.d_sae,
                found: d,
            });
        }
        Ok(f.matmul(&self.w_dec)?.broadcast_add(&self.b_dec)?)
    }

    /// f: [n, d_sae] decoded as the output for rows x: [n, d_in] (mapped back through x's
    /// normalization statistics; no skip connection): what SAELens' `decode` returns right
    /// after `encode(x)`.
    pub fn decode_for_input(&self, f: &Tensor, x: &Tensor) -> Result<Tensor, SaeError> {
        let (_, scale) = self.normalize(x)?;
        self.restore(&self.decode(f)?, &scale)
    }

    /// x: [n, d_in] -> latents and output (SAELens `forward`, with a skip transcoder's `x W_skip`).
    pub fn forward_full(&self, x: &Tensor) -> Result<ForwardOutput, SaeError> {
        let (xn, scale) = self.normalize(x)?;
        let acts = self.encode_normalized(&xn)?;
        let mut out = self.restore(&self.decode(&acts)?, &scale)?;
        if let Some(w) = &self.w_skip {
            out = (out + x.matmul(w)?)?;
        }
        Ok(ForwardOutput { acts, out })
    }

    /// x: [n, d_in] -> (f: [n, d_sae], output: [n, d_out]); see [`Sae::forward_full`].
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor), SaeError> {
        let o = self.forward_full(x)?;
        Ok((o.acts, o.out))
    }
}
