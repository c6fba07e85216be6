//! The SAE itself: its parameters and the checks that tie them to the config. Encoding and
//! decoding are in [`crate::forward`].

use candle_core::{DType, Tensor};

use crate::{Activation, SaeConfig, SaeError};

/// The magnitude path of a gated SAE (SAELens "gated"): `x (W_enc * exp(r_mag)) + b_mag`.
#[derive(Clone, Debug)]
pub struct Gate {
    /// Per-latent log scale of the shared encoder: [d_sae].
    pub r_mag: Tensor,
    /// Magnitude-path bias: [d_sae].
    pub b_mag: Tensor,
    /// `W_enc * exp(r_mag)` (column j scaled by exp(r_mag_j)), computed once: [d_in, d_sae].
    pub w_mag: Tensor,
}

impl Gate {
    /// The magnitude path for encoder `w_enc` [d_in, d_sae].
    pub fn new(w_enc: &Tensor, r_mag: Tensor, b_mag: Tensor) -> Result<Gate, SaeError> {
        let w_mag = w_enc.broadcast_mul(&r_mag.exp()?)?;
        Ok(Gate {
            r_mag,
            b_mag,
            w_mag,
        })
    }
}

/// A sparse autoencoder (or transcoder) with CPU f32 parameters.
#[derive(Clone, Debug)]
pub struct Sae {
    /// Configuration.
    pub cfg: SaeConfig,
    /// Encoder: [d_in, d_sae].
    pub w_enc: Tensor,
    /// Encoder bias (the gating bias `b_gate` of a gated SAE): [d_sae].
    pub b_enc: Tensor,
    /// Decoder, one row per latent: [d_sae, d_out] (d_out = d_in for an autoencoder).
    pub w_dec: Tensor,
    /// Decoder bias: [d_out].
    pub b_dec: Tensor,
    /// Per-latent threshold, present exactly for [`Activation::JumpRelu`]: [d_sae].
    pub threshold: Option<Tensor>,
    /// Magnitude path, present exactly for [`Activation::Gated`].
    pub gate: Option<Gate>,
    /// Skip connection (skip transcoders; sparsify's `skip_connection`), `out += x W_skip`:
    /// [d_in, d_out].
    pub w_skip: Option<Tensor>,
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
        Sae::with_parts(cfg, w_enc, b_enc, w_dec, b_dec, threshold, None, None)
    }

    /// Builds an SAE with every optional part (gate, skip connection), checking it.
    #[allow(clippy::too_many_arguments)]
    pub fn with_parts(
        cfg: SaeConfig,
        w_enc: Tensor,
        b_enc: Tensor,
        w_dec: Tensor,
        b_dec: Tensor,
        threshold: Option<Tensor>,
        gate: Option<Gate>,
        w_skip: Option<Tensor>,
    ) -> Result<Sae, SaeError> {
        let sae = Sae {
            cfg,
            w_enc,
            b_enc,
            w_dec,
            b_dec,
            threshold,
            gate,
            w_skip,
        };
        sae.validate()?;
        Ok(sae)
    }

    /// Checks shapes, dtypes and the activation's parameters.
    pub fn validate(&self) -> Result<(), SaeError> {
        let (d_in, d_sae, d_out) = (self.cfg.d_in, self.cfg.d_sae, self.cfg.out_width());
        if d_in == 0 || d_sae == 0 || d_out == 0 {
            return Err(SaeError::Invalid(format!(
                "d_in ({d_in}), d_sae ({d_sae}) and d_out ({d_out}) must be positive"
            )));
        }
        check("W_enc", &self.w_enc, &[d_in, d_sae])?;
        check("b_enc", &self.b_enc, &[d_sae])?;
        check("W_dec", &self.w_dec, &[d_sae, d_out])?;
        check("b_dec", &self.b_dec, &[d_out])?;
        if self.cfg.apply_b_dec_to_input && d_out != d_in {
            return Err(SaeError::Invalid(format!(
                "apply_b_dec_to_input needs d_out ({d_out}) = d_in ({d_in})"
            )));
        }
        if let Some(w) = &self.w_skip {
            check("W_skip", w, &[d_in, d_out])?;
        }
        self.cfg.matryoshka_widths()?;
        let arch = self.cfg.activation.architecture();
        match (&self.cfg.activation, &self.threshold) {
            (Activation::JumpRelu, Some(t)) => check("threshold", t, &[d_sae])?,
            (Activation::JumpRelu, None) => {
                return Err(SaeError::Invalid("jumprelu SAE without a threshold".into()))
            }
            (_, Some(_)) => {
                return Err(SaeError::Invalid(format!(
                    "{arch} SAE has a threshold tensor"
                )))
            }
            (Activation::TopK { k }, None) if *k == 0 || *k > d_sae => {
                return Err(SaeError::Invalid(format!(
                    "topk k = {k} must be between 1 and d_sae = {d_sae}"
                )))
            }
            (Activation::GroupMax { k }, None) if *k == 0 || !d_sae.is_multiple_of(*k) => {
                return Err(SaeError::Invalid(format!(
                    "groupmax k = {k} must divide d_sae = {d_sae}"
                )))
            }
            _ => {}
        }
        match (&self.cfg.activation, &self.gate) {
            (Activation::Gated, Some(g)) => {
                check("r_mag", &g.r_mag, &[d_sae])?;
                check("b_mag", &g.b_mag, &[d_sae])?;
                check("W_enc * exp(r_mag)", &g.w_mag, &[d_in, d_sae])?;
            }
            (Activation::Gated, None) => {
                return Err(SaeError::Invalid(
                    "gated SAE without its magnitude path (r_mag, b_mag)".into(),
                ))
            }
            (_, Some(_)) => {
                return Err(SaeError::Invalid(format!(
                    "{arch} SAE has a gated magnitude path"
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

    /// Output width (d_in for an autoencoder).
    pub fn d_out(&self) -> usize {
        self.cfg.out_width()
    }

    /// A short description: the architecture, with "transcoder" / "skip transcoder" when it is one.
    pub fn kind(&self) -> String {
        let arch = self.cfg.activation.architecture();
        match (self.cfg.is_transcoder(), self.w_skip.is_some()) {
            (false, false) => arch.to_string(),
            (false, true) => format!("{arch} with a skip connection"),
            (true, false) => format!("{arch} transcoder"),
            (true, true) => format!("{arch} skip transcoder"),
        }
    }
}

fn check(name: &str, t: &Tensor, expected: &[usize]) -> Result<(), SaeError> {
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
}
