//! Fast sampling of which of many independent Bernoulli events happen, in time proportional to
//! the number that happen (not to the number of events).
//!
//! Events are sorted by probability and cut into blocks whose probabilities lie within a factor 2
//! of the block's largest, q. Inside a block, candidates arrive with geometric gaps at rate q
//! (skip = floor(ln U / ln(1 - q))) and candidate i is kept with probability p_i / q (thinning),
//! which makes each event happen independently with probability exactly p_i.

use rand::Rng;

#[derive(Clone, Debug)]
struct Block {
    /// Event ids in this block.
    ids: Vec<u32>,
    /// p_i / q for each id.
    accept: Vec<f64>,
    /// Largest probability in the block.
    q: f64,
    /// ln(1 - q) (unused when q >= 1).
    ln_1mq: f64,
}

/// A sampler of independent Bernoulli events with fixed probabilities.
#[derive(Clone, Debug)]
pub struct SparseBernoulli {
    blocks: Vec<Block>,
}

impl SparseBernoulli {
    /// Events with ids `ids[i]` and probabilities `probs[i]` (clamped to [0, 1]).
    pub fn new(ids: &[u32], probs: &[f64]) -> SparseBernoulli {
        let mut order: Vec<usize> = (0..ids.len()).filter(|&i| probs[i] > 0.0).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
        let mut blocks: Vec<Block> = Vec::new();
        for i in order {
            let p = probs[i].min(1.0);
            let fits = blocks.last().is_some_and(|b| p >= 0.5 * b.q);
            if !fits {
                blocks.push(Block {
                    ids: Vec::new(),
                    accept: Vec::new(),
                    q: p,
                    ln_1mq: (1.0 - p).ln(),
                });
            }
            let block = blocks.last_mut().expect("a block was just pushed");
            block.ids.push(ids[i]);
            block.accept.push(p / block.q);
        }
        SparseBernoulli { blocks }
    }

    /// Appends the ids of the events that happen this time to `out` (in no particular order).
    pub fn sample<R: Rng>(&self, rng: &mut R, out: &mut Vec<u32>) {
        for b in &self.blocks {
            let keep =
                |rng: &mut R, j: usize| b.accept[j] >= 1.0 || rng.random::<f64>() < b.accept[j];
            if b.q >= 1.0 {
                for j in 0..b.ids.len() {
                    if keep(rng, j) {
                        out.push(b.ids[j]);
                    }
                }
                continue;
            }
            let mut pos = 0usize;
            loop {
                let u: f64 = rng.random();
                // 1 - u is in (0, 1]: ln is finite and <= 0, the skip is >= 0.
                let skip = ((1.0 - u).ln() / b.ln_1mq).floor();
                if skip >= (b.ids.len() - pos) as f64 {
                    break;
                }
                pos += skip as usize;
                if keep(rng, pos) {
                    out.push(b.ids[pos]);
                }
                pos += 1;
                if pos >= b.ids.len() {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// Empirical frequencies match the probabilities (reference: one coin per event).
    #[test]
    fn frequencies_match_probabilities() {
        let probs = [1.0, 0.5, 0.3, 0.05, 0.01, 0.0, 0.7, 0.26];
        let ids: Vec<u32> = (0..probs.len() as u32).collect();
        let s = SparseBernoulli::new(&ids, &probs);
        let mut rng = StdRng::seed_from_u64(7);
        let trials = 200_000;
        let mut counts = [0u32; 8];
        let mut out = Vec::new();
        for _ in 0..trials {
            out.clear();
            s.sample(&mut rng, &mut out);
            let mut seen = [false; 8];
            for &i in &out {
                assert!(!seen[i as usize], "event {i} drawn twice");
                seen[i as usize] = true;
                counts[i as usize] += 1;
            }
        }
        for (i, p) in probs.iter().enumerate() {
            let f = counts[i] as f64 / trials as f64;
            // 5 standard deviations of a binomial frequency.
            let tol = 5.0 * (p * (1.0 - p) / trials as f64).sqrt() + 1e-9;
            assert!((f - p).abs() <= tol, "event {i}: {f} vs {p}");
        }
    }

    /// Pairs stay independent: P(a and b) = p_a p_b inside one block.
    #[test]
    fn events_are_independent() {
        let probs = [0.4, 0.3];
        let s = SparseBernoulli::new(&[0, 1], &probs);
        let mut rng = StdRng::seed_from_u64(3);
        let (trials, mut both) = (200_000, 0u32);
        let mut out = Vec::new();
        for _ in 0..trials {
            out.clear();
            s.sample(&mut rng, &mut out);
            both += (out.len() == 2) as u32;
        }
        let f = both as f64 / trials as f64;
        assert!(
            (f - 0.12).abs() < 5.0 * (0.12f64 * 0.88 / trials as f64).sqrt(),
            "{f}"
        );
    }
}
