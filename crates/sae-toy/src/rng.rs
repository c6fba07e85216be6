//! A small counter-seeded generator (SplitMix64): the toy data is a pure function of
//! (seed, step, instance), whatever the thread count.

/// SplitMix64 finaliser: decorrelates (seed, stream) pairs into independent seeds.
pub fn mix(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64 stream.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A stream seeded by `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform on [0, 1) with 53 bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box-Muller, one of the pair).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Fills `row` with one sample of the toy data: each feature is 0 with probability
/// `1 - density`, else U[0, 1). One uniform per feature: when `u < density`, `u / density` is
/// itself U[0, 1).
pub fn fill_features(rng: &mut Rng, density: f64, row: &mut [f32]) {
    for v in row.iter_mut() {
        let u = rng.uniform();
        *v = if u < density {
            (u / density) as f32
        } else {
            0.0
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_have_the_stated_density_and_uniform_values() {
        let mut rng = Rng::new(7);
        let (n, density) = (200_000, 0.1);
        let mut row = vec![0f32; n];
        fill_features(&mut rng, density, &mut row);
        let on: Vec<f64> = row
            .iter()
            .filter(|v| **v > 0.0)
            .map(|v| *v as f64)
            .collect();
        let frac = on.len() as f64 / n as f64;
        assert!((frac - 0.1).abs() < 0.003, "density {frac}");
        let mean = on.iter().sum::<f64>() / on.len() as f64;
        let var = on.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / on.len() as f64;
        // U[0, 1): mean 1/2, variance 1/12.
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
        assert!((var - 1.0 / 12.0).abs() < 0.003, "var {var}");
        assert!(row.iter().all(|v| (0.0..1.0).contains(v)));
    }

    #[test]
    fn normals_have_unit_variance() {
        let mut rng = Rng::new(3);
        let xs: Vec<f64> = (0..100_000).map(|_| rng.normal()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(
            mean.abs() < 0.02 && (var - 1.0).abs() < 0.02,
            "{mean} {var}"
        );
    }
}
