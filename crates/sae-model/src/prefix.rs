//! Matryoshka SAEs: the nested prefixes' own reconstruction, measured on held-out rows.
//!
//! A Matryoshka SAE records its prefix widths in its metadata (`matryoshka_widths`, increasing,
//! the last one d_sae). The prefix of width w reconstructs a row from its first w latents alone:
//! `x_hat_w = f[:, :w] W_dec[:w] + b_dec` (mapped back through the input normalization, plus the
//! skip connection when there is one), with f the full SAE's latents. Its `fvu` and `mse` are
//! those of x_hat_w (the definitions of [`crate::metrics`]); its `l0` is the mean number of
//! nonzero latents among the first w. The full-width entry is the SAE's own fvu and l0.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::metrics::ReconStats;
use crate::{Sae, SaeConfig, SaeError};

/// The metadata key holding a Matryoshka SAE's prefix widths.
pub const MATRYOSHKA_WIDTHS: &str = "matryoshka_widths";

/// Held-out metrics of one nested prefix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrefixMetrics {
    /// Number of latents in the prefix (the first `width` latents).
    pub width: usize,
    /// Mean squared error per element of the prefix's reconstruction.
    pub mse: f64,
    /// Fraction of variance unexplained by the prefix's reconstruction.
    pub fvu: f64,
    /// Mean nonzero latents per row among the prefix's latents.
    pub l0: f64,
}

impl SaeConfig {
    /// The prefix widths of a Matryoshka SAE (`matryoshka_widths` in the metadata): `None` for
    /// any other SAE; an error when they are not increasing positive integers ending at d_sae.
    pub fn matryoshka_widths(&self) -> Result<Option<Vec<usize>>, SaeError> {
        let Some(v) = self.metadata.extra.get(MATRYOSHKA_WIDTHS) else {
            return Ok(None);
        };
        let bad = || {
            SaeError::Invalid(format!(
                "metadata {MATRYOSHKA_WIDTHS} = {v} must be increasing positive integers ending at d_sae = {}",
                self.d_sae
            ))
        };
        let widths: Vec<usize> = v
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|w| w.as_u64().map(|w| w as usize).ok_or_else(bad))
            .collect::<Result<_, _>>()?;
        let increasing = widths.windows(2).all(|p| p[0] < p[1]);
        if widths.first().is_none_or(|w| *w == 0)
            || !increasing
            || widths.last() != Some(&self.d_sae)
        {
            return Err(bad());
        }
        Ok(Some(widths))
    }
}

/// Streaming reconstruction statistics of every prefix of a Matryoshka SAE.
#[derive(Clone, Debug)]
pub struct PrefixStats {
    widths: Vec<usize>,
    recon: Vec<ReconStats>,
}

impl PrefixStats {
    /// Empty statistics for the prefixes `widths` of an SAE with output width `d_out`.
    pub fn new(widths: Vec<usize>, d_out: usize) -> PrefixStats {
        let recon = widths.iter().map(|_| ReconStats::new(d_out)).collect();
        PrefixStats { widths, recon }
    }

    /// Adds a batch: inputs x [n, d_in], the full SAE's latents f [n, d_sae] and the rows the
    /// output should give, y [n, d_out] row-major.
    pub fn push(&mut self, sae: &Sae, x: &Tensor, f: &Tensor, y: &[f32]) -> Result<(), SaeError> {
        let (_, scale) = sae.normalize(x)?;
        let skip = match &sae.w_skip {
            Some(w) => Some(x.matmul(w)?),
            None => None,
        };
        for (w, stats) in self.widths.iter().zip(self.recon.iter_mut()) {
            let dec = f
                .narrow(1, 0, *w)?
                .matmul(&sae.w_dec.narrow(0, 0, *w)?)?
                .broadcast_add(&sae.b_dec)?;
            let mut out = sae.restore(&dec, &scale)?;
            if let Some(s) = &skip {
                out = (out + s)?;
            }
            stats.push(y, &out.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(())
    }

    /// The metrics of every prefix, given the per-latent firing counts over the same rows.
    pub fn finish(&self, counts: &[u64], rows: u64) -> Vec<PrefixMetrics> {
        self.widths
            .iter()
            .zip(&self.recon)
            .map(|(w, r)| PrefixMetrics {
                width: *w,
                mse: r.mse(),
                fvu: r.fvu(),
                l0: counts[..*w].iter().sum::<u64>() as f64 / rows as f64,
            })
            .collect()
    }
}
