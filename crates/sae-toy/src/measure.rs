//! The paper's measurements of one instance's W [m, n] (column i = feature i's direction W_i).
//!
//! - ||W_i||: feature i is *represented* when ||W_i|| > [`REPRESENTED_NORM`];
//! - superposition_i = sum_{j != i} (W_i_hat . W_j)^2;
//! - feature dimensionality D_i = ||W_i||^2 / sum_j (W_i_hat . W_j)^2 (1: a dedicated dimension,
//!   1/2: an antipodal pair, 2/5: a pentagon, ...);
//! - D* = m / ||W||_F^2: hidden dimensions per embedded feature.

use serde::{Deserialize, Serialize};

/// A feature counts as represented when its column norm exceeds this (trained norms are
/// close to 0 or close to 1).
pub const REPRESENTED_NORM: f64 = 0.5;

/// The measurements of one instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Geometry {
    /// ||W_i|| per feature [n].
    pub norms: Vec<f64>,
    /// sum_{j != i} (W_i_hat . W_j)^2 per feature [n] (0 for a zero column).
    pub superposition: Vec<f64>,
    /// D_i per feature [n] (0 for a zero column).
    pub dimensionality: Vec<f64>,
    /// m / ||W||_F^2.
    pub d_star: f64,
    /// Features with ||W_i|| > [`REPRESENTED_NORM`].
    pub represented: usize,
}

/// Gram matrix G = W^T W [n, n] of W [m, n].
pub fn gram(w: &[f32], m: usize, n: usize) -> Vec<f64> {
    let mut g = vec![0f64; n * n];
    for row in w.chunks_exact(n).take(m) {
        for i in 0..n {
            let a = row[i] as f64;
            for j in 0..n {
                g[i * n + j] += a * row[j] as f64;
            }
        }
    }
    g
}

/// The measurements of W [m, n].
pub fn geometry(w: &[f32], m: usize, n: usize) -> Geometry {
    let g = gram(w, m, n);
    let mut norms = Vec::with_capacity(n);
    let mut superposition = Vec::with_capacity(n);
    let mut dimensionality = Vec::with_capacity(n);
    for i in 0..n {
        let sq = g[i * n + i];
        norms.push(sq.sqrt());
        if sq <= 1e-24 {
            superposition.push(0.0);
            dimensionality.push(0.0);
            continue;
        }
        // (W_i_hat . W_j)^2 = G_ij^2 / ||W_i||^2.
        let all: f64 = (0..n).map(|j| g[i * n + j].powi(2)).sum::<f64>() / sq;
        superposition.push(all - sq);
        dimensionality.push(sq / all);
    }
    let frob: f64 = (0..n).map(|i| g[i * n + i]).sum();
    let d_star = if frob > 0.0 { m as f64 / frob } else { 0.0 };
    let represented = norms.iter().filter(|v| **v > REPRESENTED_NORM).count();
    Geometry {
        norms,
        superposition,
        dimensionality,
        d_star,
        represented,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    /// An antipodal pair in one dimension: D = 1/2 each, superposition 1, D* = 1/2.
    #[test]
    fn antipodal_pair() {
        let g = geometry(&[1.0, -1.0], 1, 2);
        assert!(close(g.dimensionality[0], 0.5) && close(g.dimensionality[1], 0.5));
        assert!(close(g.superposition[0], 1.0));
        assert!(close(g.d_star, 0.5));
        assert_eq!(g.represented, 2);
    }

    /// A regular pentagon in two dimensions: D_i = 1 / sum_j cos^2(2 pi (i - j) / 5) = 2/5.
    #[test]
    fn pentagon() {
        let mut w = vec![0f32; 10];
        for i in 0..5 {
            let a = std::f64::consts::TAU * i as f64 / 5.0;
            w[i] = a.cos() as f32;
            w[5 + i] = a.sin() as f32;
        }
        let g = geometry(&w, 2, 5);
        for d in &g.dimensionality {
            assert!((d - 0.4).abs() < 1e-6, "{d}");
        }
        assert!((g.d_star - 0.4).abs() < 1e-6);
        // superposition_i = 5/2 - 1.
        assert!((g.superposition[0] - 1.5).abs() < 1e-6);
    }

    /// Two dedicated dimensions, one feature at norm 0.3 (not represented) and a zero column.
    #[test]
    fn dedicated_small_and_zero_columns() {
        // W = [[1, 0, 0.3, 0], [0, 2, 0, 0]]
        let w = [1.0, 0.0, 0.3, 0.0, 0.0, 2.0, 0.0, 0.0];
        let g = geometry(&w, 2, 4);
        assert!(close(g.norms[1], 2.0) && close(g.norms[2], 0.3) && g.norms[3] == 0.0);
        // Feature 0 shares its direction with feature 2: (W0_hat . W2)^2 = 0.09.
        assert!(close(g.superposition[0], 0.09));
        assert!(close(g.dimensionality[0], 1.0 / 1.09));
        // Feature 2: W2_hat = (1, 0), so the sum is 1 (W0) + 0.09 (itself): D = 0.09 / 1.09.
        assert!(close(g.dimensionality[2], 0.09 / 1.09));
        assert!(close(g.dimensionality[1], 1.0));
        assert_eq!(g.dimensionality[3], 0.0);
        assert!(close(g.d_star, 2.0 / (1.0 + 4.0 + 0.09)));
        assert_eq!(g.represented, 2);
    }
}
