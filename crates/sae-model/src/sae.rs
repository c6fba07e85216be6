//! The SAE itself: parameters plus encode (`f = act(W_enc^T (x - b_dec) + b_enc)`) and decode
//! (`x_hat = f W_dec + b_dec`).

use candle_core::{DType, Device, Tensor};

use crate::topk::topk_relu_rows;
use crate::{Activation, SaeConfig, SaeError};

/// A sparse autoencoder with CPU f32 parameters.
#[derive(Clone, Debug)]
pub struct Sae {
    /// Configuration.
    pub cfg: SaeConfig,
    /// Encoder: [d_in, d_sae].
    pub w_enc: Tensor,
    /// Encoder bias: [d_sae].
    pub b_enc: Tensor,
    /// Decoder, one row per latent: [d_sae, d_in].
    pub w_dec: Tensor,
    /// Decoder bias: [d_in].
    pub b_dec: Tensor,
    /// Per-latent threshold, present exactly for [`Activation::JumpRelu`]: [d_sae].
    pub threshold: Option<Tensor>,
}

impl Sae {
    /// Builds an SAE, checking every shape against the config and the activation's needs.
    pub fn new(
        cfg: SaeConfig,
        w_enc: Tensor,
        b_enc: Tensor,
        w_dec: Tensor,
        b_dec: Tensor,
        threshold: Option<Tensor>,
    ) -> Result<Sae, SaeError> {
        let sae = Sae {
            cfg,
            w_enc,
            b_enc,
            w_dec,
            b_dec,
            threshold,
        };
        sae.validate()?;
        Ok(sae)
    }

    /// Checks shapes, dtypes and the activation's parameters.
    pub fn validate(&self) -> Result<(), SaeError> {
        let (d_in, d_sae) = (self.cfg.d_in, self.cfg.d_sae);
        if d_in == 0 || d_sae == 0 {
            return Err(SaeError::Invalid(format!(
                "d_in ({d_in}) and d_sae ({d_sae}) must be positive"
            )));
        }
        let check = |name: &str, t: &Tensor, expected: &[usize]| -> Result<(), SaeError> {
            if t.dims() != expected {
                return Err(SaeError::Invalid(format!(
                    "{name} has shape {:?}, expected {expected:?}",
                    t.dims()
                )));
            }
            if t.dtype() != DType::F32 {
                return Err(SaeError::Invalid(format!(
                    "{name} has dtype {:?}, expected f32",
                    t.dtype()
                )));
            }
            Ok(())
        };
        check("W_enc", &self.w_enc, &[d_in, d_sae])?;
        check("b_enc", &self.b_enc, &[d_sae])?;
        check("W_dec", &self.w_dec, &[d_sae, d_in])?;
        check("b_dec", &self.b_dec, &[d_in])?;
        match (&self.cfg.activation, &self.threshold) {
            (Activation::JumpRelu, Some(t)) => check("threshold", t, &[d_sae])?,
            (Activation::JumpRelu, None) => {
                return Err(SaeError::Invalid("jumprelu SAE without a threshold".into()))
            }
            (_, Some(_)) => {
                return Err(SaeError::Invalid(format!(
                    "{} SAE has a threshold tensor",
                    self.cfg.activation.architecture()
                )))
            }
            (Activation::TopK { k }, None) if *k == 0 || *k > d_sae => {
                return Err(SaeError::Invalid(format!(
                    "topk k = {k} must be between 1 and d_sae = {d_sae}"
                )))
            }
            _ => {}
        }
        Ok(())
    }

    /// Input width.
    pub fn d_in(&self) -> usize {
        self.cfg.d_in
    }

    /// Number of latents.
    pub fn d_sae(&self) -> usize {
        self.cfg.d_sae
    }

    /// x: [n, d_in] -> [n, d_sae]: `(x - b_dec) W_enc + b_enc` (without `- b_dec` when
    /// `apply_b_dec_to_input` is false).
    pub fn pre_acts(&self, x: &Tensor) -> Result<Tensor, SaeError> {
        let (_, d) = x.dims2()?;
        if d != self.cfg.d_in {
            return Err(SaeError::InputWidth {
                what: "encoder input",
                expected: self.cfg.d_in,
                found: d,
            });
        }
        let x = if self.cfg.apply_b_dec_to_input {
            x.broadcast_sub(&self.b_dec)?
        } else {
            x.clone()
        };
        Ok(x.matmul(&self.w_enc)?.broadcast_add(&self.b_enc)?)
    }

    /// x: [n, d_in] -> f: [n, d_sae], dense with zeros where a latent is off.
    pub fn encode(&self, x: &Tensor) -> Result<Tensor, SaeError> {
        let z = self.pre_acts(x)?;
        self.activate(&z)
    }

    /// z: [n, d_sae] pre-activations -> f: [n, d_sae] after the inference activation.
    pub fn activate(&self, z: &Tensor) -> Result<Tensor, SaeError> {
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
        }
    }

    /// f: [n, d_sae] -> x_hat: [n, d_in].
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

    /// x: [n, d_in] -> (f: [n, d_sae], x_hat: [n, d_in]).
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor), SaeError> {
        let f = self.encode(x)?;
        let x_hat = self.decode(&f)?;
        Ok((f, x_hat))
    }
}
