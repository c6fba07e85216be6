//! Transcoders in the trainer: a member's rows are the input row followed by the target row
//! (`[x | y]`, width d_in + d_out), as the paired batch source draws them (the same rows of two
//! row-aligned stores); the trainer splits them, scales each side on its own and fits y from x.

use crate::config::{ArchConfig, Resolved, TrainConfig};
use crate::error::{Result, TrainError};
use crate::source::DataInfo;

/// The sizes of a member trained on `info`'s rows (a transcoder: d_in = row width - d_out).
pub(crate) fn resolve_for(cfg: &TrainConfig, info: &DataInfo) -> Result<Resolved> {
    let d_out = info.d_out.unwrap_or(0);
    let mut res = cfg.resolve(info.d.saturating_sub(d_out))?;
    res.d_out = info.d_out;
    Ok(res)
}

/// Splits rows `[x | y]` of width d_in + d_out into `x` [n, d_in] and `y` [n, d_out].
pub(crate) fn split_rows(
    rows: &[f32],
    d_in: usize,
    d_out: usize,
    x: &mut Vec<f32>,
    y: &mut Vec<f32>,
) {
    let n = rows.len() / (d_in + d_out);
    x.resize(n * d_in, 0.0);
    y.resize(n * d_out, 0.0);
    for ((r, xr), yr) in rows
        .chunks_exact(d_in + d_out)
        .zip(x.chunks_exact_mut(d_in))
        .zip(y.chunks_exact_mut(d_out))
    {
        xr.copy_from_slice(&r[..d_in]);
        yr.copy_from_slice(&r[d_in..]);
    }
}

/// The scale c with E||c x|| = sqrt(d) over the sample rows (1 when normalisation is off or the
/// rows are all zero).
pub(crate) fn norm_scale(sample: &[f32], d: usize, normalize: bool) -> f32 {
    let n = sample.len() / d.max(1);
    if !normalize || n == 0 {
        return 1.0;
    }
    let mean_norm = sample
        .chunks(d)
        .map(|r| r.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt())
        .sum::<f64>()
        / n as f64;
    if mean_norm > 0.0 {
        ((d as f64).sqrt() / mean_norm) as f32
    } else {
        1.0
    }
}

/// Checks that `cfg` can train a transcoder or, without a target, that it asks for no skip
/// connection. Every architecture trains as a transcoder, saved where a library loads it:
/// BatchTopK and Matryoshka BatchTopK as SAELens' jumprelu_transcoder with the global threshold
/// (Matryoshka's prefix widths in the metadata), ReLU-L1 as transcoder, JumpReLU as
/// jumprelu_transcoder (each `skip_` with --skip), TopK in sparsify's layout (`transcode`,
/// `skip_connection`: SAELens has no TopK transcoder), which holds d_out = d_in only.
pub(crate) fn check(cfg: &TrainConfig, res: &Resolved) -> Result<()> {
    match (res.d_out, &cfg.arch) {
        (None, _) if cfg.skip => Err(TrainError::Invalid(
            "a skip connection (--skip) belongs to a transcoder: give --target-store".into(),
        )),
        (Some(d_out), ArchConfig::TopK { .. }) if d_out != res.d_in => {
            Err(TrainError::Invalid(format!(
                "a topk transcoder is saved in sparsify's layout (SAELens has no TopK \
                 transcoder), whose transcoders predict a hook of the input's width: the target \
                 store's width {d_out} is not the input's {}; use --arch batchtopk (saved as \
                 SAELens' jumprelu_transcoder) for hooks of different widths",
                res.d_in
            )))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_split_into_input_and_target() {
        let rows = [1., 2., 3., 4., 5., 6., 7., 8., 9., 10.];
        let (mut x, mut y) = (Vec::new(), Vec::new());
        split_rows(&rows, 2, 3, &mut x, &mut y);
        assert_eq!(x, vec![1., 2., 6., 7.]);
        assert_eq!(y, vec![3., 4., 5., 8., 9., 10.]);
    }

    #[test]
    fn scale_makes_the_mean_norm_sqrt_d() {
        // Rows of norm 5 and 10 (mean 7.5) in d = 4: c = 2 / 7.5.
        let c = norm_scale(&[3., 4., 0., 0., 0., 0., 6., 8.], 4, true);
        assert!((c - 2.0 / 7.5).abs() < 1e-7);
        assert_eq!(norm_scale(&[3., 4.], 2, false), 1.0);
    }
}
