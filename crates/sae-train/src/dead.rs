//! Dead-latent tracking over a token window, and firing counts for the saved log10 density.

/// Per-latent counters updated after every batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadTracker {
    /// Window: a latent is dead when it has not fired in the last `window` tokens.
    pub window: u64,
    /// since[j]: tokens seen since latent j last fired (at start: since training began).
    pub since: Vec<u64>,
    /// fires[j]: rows on which latent j fired since the density window opened.
    pub fires: Vec<u64>,
    /// Rows seen since the density window opened.
    pub rows: u64,
}

impl DeadTracker {
    /// Fresh counters for `d_sae` latents.
    pub fn new(d_sae: usize, window: u64) -> DeadTracker {
        DeadTracker {
            window,
            since: vec![0; d_sae],
            fires: vec![0; d_sae],
            rows: 0,
        }
    }

    /// Records one batch of `rows` rows where latent j fired on `fired[j]` of them.
    pub fn update(&mut self, fired: &[u32], rows: u64) {
        for ((s, f), &c) in self.since.iter_mut().zip(&mut self.fires).zip(fired) {
            *s = if c > 0 { 0 } else { s.saturating_add(rows) };
            *f += c as u64;
        }
        self.rows += rows;
    }

    /// dead[j]: latent j has not fired in the last `window` tokens.
    pub fn dead_mask(&self) -> Vec<bool> {
        self.since.iter().map(|s| *s >= self.window).collect()
    }

    /// Fraction of latents that are dead.
    pub fn dead_frac(&self) -> f64 {
        let n = self.since.len().max(1) as f64;
        self.since.iter().filter(|s| **s >= self.window).count() as f64 / n
    }

    /// Restarts the density window (called when the final `window` tokens of training begin).
    pub fn reset_density(&mut self) {
        self.fires.iter_mut().for_each(|f| *f = 0);
        self.rows = 0;
    }

    /// log10 of each latent's firing frequency over the density window (-10 for never).
    pub fn log10_density(&self) -> Vec<f32> {
        let rows = self.rows.max(1) as f64;
        self.fires
            .iter()
            .map(|&f| {
                if f == 0 {
                    -10.0
                } else {
                    (f as f64 / rows).log10() as f32
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latents_die_after_the_window_and_revive_on_firing() {
        let mut t = DeadTracker::new(3, 10);
        t.update(&[1, 0, 0], 4);
        t.update(&[0, 0, 2], 4);
        assert_eq!(t.since, vec![4, 8, 0]);
        assert_eq!(t.dead_mask(), vec![false, false, false]);
        t.update(&[0, 0, 1], 4);
        assert_eq!(t.dead_mask(), vec![false, true, false]);
        assert!((t.dead_frac() - 1.0 / 3.0).abs() < 1e-12);
        // Density: latent 0 fired once in 12 rows, latent 2 three times, latent 1 never.
        let d = t.log10_density();
        assert!((d[0] - (1.0f64 / 12.0).log10() as f32).abs() < 1e-6);
        assert_eq!(d[1], -10.0);
        assert!((d[2] - 0.25f64.log10() as f32).abs() < 1e-6);
    }
}
