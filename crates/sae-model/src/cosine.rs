//! Ground-truth recovery: for each true feature, its best cosine similarity with any decoder row.

use candle_core::{Device, Tensor, D};

use crate::SaeError;

/// Rows of `a` scaled to unit norm; zero rows stay zero. a: [n, d].
fn unit_rows(a: &Tensor) -> Result<Tensor, SaeError> {
    let norms = a.sqr()?.sum_keepdim(1)?.sqrt()?;
    // max(norm, tiny) keeps zero rows at zero instead of NaN.
    let norms = norms.maximum(1e-30f32)?;
    Ok(a.broadcast_div(&norms)?)
}

/// features: [n, d], decoder: [m, d] -> [n]: max over decoder rows of cos(feature, row),
/// computed with matmuls over blocks of features.
pub fn max_cosines(features: &Tensor, decoder: &Tensor) -> Result<Vec<f64>, SaeError> {
    let (n, _) = features.dims2()?;
    let f = unit_rows(features)?;
    let w = unit_rows(decoder)?.t()?.contiguous()?;
    let mut out = Vec::with_capacity(n);
    const BLOCK: usize = 1024;
    let mut start = 0;
    while start < n {
        let len = BLOCK.min(n - start);
        let cos = f.narrow(0, start, len)?.matmul(&w)?;
        out.extend(
            cos.max(D::Minus1)?
                .to_vec1::<f32>()?
                .into_iter()
                .map(f64::from),
        );
        start += len;
    }
    Ok(out)
}

/// Plain reference of [`max_cosines`]: features [n, d], decoder [m, d] row-major.
pub fn max_cosines_reference(features: &[f32], decoder: &[f32], d: usize) -> Vec<f64> {
    let norm = |r: &[f32]| r.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
    features
        .chunks_exact(d)
        .map(|f| {
            let nf = norm(f);
            decoder
                .chunks_exact(d)
                .map(|w| {
                    let nw = norm(w);
                    let dot: f64 = f.iter().zip(w).map(|(a, b)| *a as f64 * *b as f64).sum();
                    if nf > 0.0 && nw > 0.0 {
                        dot / (nf * nw)
                    } else {
                        0.0
                    }
                })
                .fold(f64::NEG_INFINITY, f64::max)
        })
        .collect()
}

/// A CPU tensor from row-major values.
pub(crate) fn matrix(values: Vec<f32>, rows: usize, cols: usize) -> Result<Tensor, SaeError> {
    Ok(Tensor::from_vec(values, (rows, cols), &Device::Cpu)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_cosines() {
        // f0 = (1, 0): best row (1, 1)/sqrt2 -> cos 0.70710678; f1 = (0, 2): row (0, -3) gives -1,
        // row (1, 1) gives 0.70710678, row (0, 5) gives 1.
        let features = matrix(vec![1.0, 0.0, 0.0, 2.0], 2, 2).unwrap();
        let decoder = matrix(vec![1.0, 1.0, 0.0, -3.0, 0.0, 5.0], 3, 2).unwrap();
        let got = max_cosines(&features, &decoder).unwrap();
        assert!((got[0] - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert!((got[1] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn matmul_path_agrees_with_reference() {
        let (n, m, d) = (1500, 37, 9);
        let gen = |len: usize, seed: u32| -> Vec<f32> {
            (0..len)
                .map(|i| ((i as f32 + seed as f32) * 0.7311).sin() * 1.3)
                .collect()
        };
        let (fv, wv) = (gen(n * d, 1), gen(m * d, 2));
        let got = max_cosines(
            &matrix(fv.clone(), n, d).unwrap(),
            &matrix(wv.clone(), m, d).unwrap(),
        )
        .unwrap();
        let want = max_cosines_reference(&fv, &wv, d);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
    }
}
