//! Evaluation metrics as pure functions (whole-set reference versions) plus the streaming
//! accumulators [`ReconStats`] and [`FiringStats`] that `evaluate` feeds batch by batch.
//!
//! Definitions (x: [n, d] inputs, x_hat: [n, d] reconstructions, f: [n, d_sae] latents):
//! - mse = sum (x - x_hat)^2 / (n d)  (per element)
//! - fvu = sum ||x - x_hat||^2 / sum ||x - mean(x)||^2, mean(x) the per-dimension mean over the set
//! - l2_ratio = mean over rows with ||x|| > 0 of ||x_hat|| / ||x||  (1 = no shrinkage)
//! - l0 = mean number of nonzero latents per row
//! - dead_frac = fraction of latents that never fire; dense_frac = fraction firing on > 10% of rows

/// Fraction of rows above which a latent counts as dense.
pub const DENSE_THRESHOLD: f64 = 0.1;

/// Mean squared error per element. x, x_hat: [n, d] row-major.
pub fn mse(x: &[f32], x_hat: &[f32]) -> f64 {
    let sum: f64 = x
        .iter()
        .zip(x_hat)
        .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
        .sum();
    sum / x.len() as f64
}

/// Fraction of variance unexplained (two passes). x, x_hat: [n, d] row-major.
pub fn fvu(x: &[f32], x_hat: &[f32], d: usize) -> f64 {
    let n = x.len() / d;
    let mut mean = vec![0f64; d];
    for row in x.chunks_exact(d) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += *v as f64 / n as f64;
        }
    }
    let total: f64 = x
        .chunks_exact(d)
        .flat_map(|row| row.iter().zip(&mean).map(|(v, m)| (*v as f64 - m).powi(2)))
        .sum();
    let err: f64 = x
        .iter()
        .zip(x_hat)
        .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
        .sum();
    err / total
}

fn norm(row: &[f32]) -> f64 {
    row.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt()
}

/// Mean of ||x_hat|| / ||x|| over the rows where ||x|| > 0 (NaN when there is none).
pub fn l2_ratio(x: &[f32], x_hat: &[f32], d: usize) -> f64 {
    let (mut sum, mut rows) = (0f64, 0u64);
    for (a, b) in x.chunks_exact(d).zip(x_hat.chunks_exact(d)) {
        let na = norm(a);
        if na > 0.0 {
            sum += norm(b) / na;
            rows += 1;
        }
    }
    sum / rows as f64
}

/// Mean number of nonzero latents per row. f: [n, d_sae].
pub fn l0(f: &[f32], d_sae: usize) -> f64 {
    let nonzero = f.iter().filter(|v| **v != 0.0).count();
    nonzero as f64 / (f.len() / d_sae) as f64
}

/// Fraction of latents whose firing count is 0.
pub fn dead_frac(counts: &[u64]) -> f64 {
    counts.iter().filter(|c| **c == 0).count() as f64 / counts.len() as f64
}

/// Fraction of latents firing on more than [`DENSE_THRESHOLD`] of `rows`.
pub fn dense_frac(counts: &[u64], rows: u64) -> f64 {
    let limit = DENSE_THRESHOLD * rows as f64;
    counts.iter().filter(|c| **c as f64 > limit).count() as f64 / counts.len() as f64
}

/// Mean over true features of their best cosine with any decoder row.
pub fn mmcs(max_cos: &[f64]) -> f64 {
    max_cos.iter().sum::<f64>() / max_cos.len() as f64
}

/// Cosine above which a true feature counts as recovered.
pub const RECOVERED_COSINE: f64 = 0.9;

/// Fraction of true features whose best decoder cosine exceeds [`RECOVERED_COSINE`].
pub fn recovered_frac(max_cos: &[f64]) -> f64 {
    max_cos.iter().filter(|c| **c > RECOVERED_COSINE).count() as f64 / max_cos.len() as f64
}

/// Streaming reconstruction statistics: exact sums in f64, the mean and centred sum of squares
/// merged batch by batch (Chan et al.), so FVU matches the two-pass [`fvu`].
#[derive(Clone, Debug)]
pub struct ReconStats {
    d: usize,
    rows: u64,
    sum_sq_err: f64,
    mean: Vec<f64>,
    m2: Vec<f64>,
    ratio_sum: f64,
    ratio_rows: u64,
}

impl ReconStats {
    /// Empty statistics for rows of width `d`.
    pub fn new(d: usize) -> ReconStats {
        ReconStats {
            d,
            rows: 0,
            sum_sq_err: 0.0,
            mean: vec![0.0; d],
            m2: vec![0.0; d],
            ratio_sum: 0.0,
            ratio_rows: 0,
        }
    }

    /// Adds a batch. x, x_hat: [n, d] row-major.
    pub fn push(&mut self, x: &[f32], x_hat: &[f32]) {
        let d = self.d;
        let nb = (x.len() / d) as u64;
        if nb == 0 {
            return;
        }
        let mut bmean = vec![0f64; d];
        for row in x.chunks_exact(d) {
            for (m, v) in bmean.iter_mut().zip(row) {
                *m += *v as f64;
            }
        }
        bmean.iter_mut().for_each(|m| *m /= nb as f64);
        let mut bm2 = vec![0f64; d];
        for (a, b) in x.chunks_exact(d).zip(x_hat.chunks_exact(d)) {
            for j in 0..d {
                bm2[j] += (a[j] as f64 - bmean[j]).powi(2);
                self.sum_sq_err += (a[j] as f64 - b[j] as f64).powi(2);
            }
            let na = norm(a);
            if na > 0.0 {
                self.ratio_sum += norm(b) / na;
                self.ratio_rows += 1;
            }
        }
        let (na, total) = (self.rows as f64, (self.rows + nb) as f64);
        for j in 0..d {
            let delta = bmean[j] - self.mean[j];
            self.mean[j] += delta * nb as f64 / total;
            self.m2[j] += bm2[j] + delta * delta * na * nb as f64 / total;
        }
        self.rows += nb;
    }

    /// Rows seen.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Mean squared error per element.
    pub fn mse(&self) -> f64 {
        self.sum_sq_err / (self.rows as f64 * self.d as f64)
    }

    /// Fraction of variance unexplained against the mean of all rows seen.
    pub fn fvu(&self) -> f64 {
        self.sum_sq_err / self.m2.iter().sum::<f64>()
    }

    /// Mean of ||x_hat|| / ||x|| over rows with ||x|| > 0.
    pub fn l2_ratio(&self) -> f64 {
        self.ratio_sum / self.ratio_rows as f64
    }
}

/// Streaming firing counts per latent.
#[derive(Clone, Debug)]
pub struct FiringStats {
    /// Rows on which each latent was nonzero: [d_sae].
    pub counts: Vec<u64>,
    /// Rows seen.
    pub rows: u64,
}

impl FiringStats {
    /// Empty counts for `d_sae` latents.
    pub fn new(d_sae: usize) -> FiringStats {
        FiringStats {
            counts: vec![0; d_sae],
            rows: 0,
        }
    }

    /// Adds per-latent counts of a batch of `rows` rows.
    pub fn add_counts(&mut self, counts: &[u64], rows: u64) {
        for (c, n) in self.counts.iter_mut().zip(counts) {
            *c += n;
        }
        self.rows += rows;
    }

    /// Mean nonzero latents per row.
    pub fn l0(&self) -> f64 {
        self.counts.iter().sum::<u64>() as f64 / self.rows as f64
    }

    /// Fraction of latents that never fired.
    pub fn dead_frac(&self) -> f64 {
        dead_frac(&self.counts)
    }

    /// Fraction of latents firing on more than 10% of rows.
    pub fn dense_frac(&self) -> f64 {
        dense_frac(&self.counts, self.rows)
    }

    /// log10 of each latent's firing frequency [d_sae]; latents that never fire get -10.
    pub fn log10_density(&self) -> Vec<f32> {
        self.counts
            .iter()
            .map(|c| ((*c as f64 / self.rows.max(1) as f64).max(1e-10)).log10() as f32)
            .collect()
    }
}
