//! Bounded heavy-hitter counting (Misra–Gries) of token ids seen while a unit is active.
//!
//! With capacity `k`, every item whose true count exceeds `total / (k + 1)` is kept, and a kept
//! item's count `c` satisfies `true - total / (k + 1) <= c <= true`: counts are lower bounds,
//! exact whenever the stream never held more than `k` distinct items.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Multiplicative hasher for integer keys (token ids, packed bigrams); not for untrusted strings.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0 ^ i)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }
}

/// A `HashMap` keyed by integers with [`IdHasher`].
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Misra–Gries summary with at most `capacity` counters.
#[derive(Clone, Debug)]
pub struct MisraGries<K: std::hash::Hash + Eq + Copy> {
    capacity: usize,
    counts: IdMap<K, u32>,
    total: u64,
    decremented: bool,
}

impl<K: std::hash::Hash + Eq + Copy + Ord> MisraGries<K> {
    /// An empty summary keeping at most `capacity` (>= 1) items.
    pub fn new(capacity: usize) -> Self {
        MisraGries {
            capacity: capacity.max(1),
            counts: IdMap::default(),
            total: 0,
            decremented: false,
        }
    }

    /// Counts one occurrence of `key`.
    pub fn add(&mut self, key: K) {
        self.total += 1;
        if let Some(c) = self.counts.get_mut(&key) {
            *c += 1;
        } else if self.counts.len() < self.capacity {
            self.counts.insert(key, 1);
        } else {
            // Decrement every counter (the new item's single count cancels too).
            self.decremented = true;
            self.counts.retain(|_, c| {
                *c -= 1;
                *c > 0
            });
        }
    }

    /// The kept (lower-bound) count of `key`, 0 when it is not kept.
    pub fn get(&self, key: K) -> u32 {
        self.counts.get(&key).copied().unwrap_or(0)
    }

    /// Items added so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// True when every kept count is exact (the summary never had to decrement).
    pub fn exact(&self) -> bool {
        !self.decremented
    }

    /// Largest possible undercount of any item: `total / (capacity + 1)` once decremented, else 0.
    pub fn max_error(&self) -> u64 {
        if self.decremented {
            self.total / (self.capacity as u64 + 1)
        } else {
            0
        }
    }

    /// Kept items with their (lower-bound) counts, largest first, ties by key.
    pub fn items(&self) -> Vec<(K, u32)> {
        let mut v: Vec<(K, u32)> = self.counts.iter().map(|(k, c)| (*k, *c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_when_few_distinct() {
        let mut mg = MisraGries::new(4);
        for k in [1u32, 2, 1, 3, 1, 2] {
            mg.add(k);
        }
        assert!(mg.exact());
        assert_eq!(mg.items(), vec![(1, 3), (2, 2), (3, 1)]);
        assert_eq!(mg.total(), 6);
    }

    #[test]
    fn keeps_heavy_hitter_with_bounded_undercount() {
        // Stream: item 7 appears 50 times among 100 distinct singletons.
        let mut mg = MisraGries::new(3);
        let mut n7 = 0;
        for i in 0..150u32 {
            if i % 3 == 0 {
                mg.add(7);
                n7 += 1;
            } else {
                mg.add(1000 + i);
            }
        }
        let items = mg.items();
        assert_eq!(items[0].0, 7);
        let c = items[0].1 as u64;
        assert!(c <= n7);
        assert!(
            c + mg.max_error() >= n7,
            "c={c} err={} true={n7}",
            mg.max_error()
        );
        assert!(!mg.exact());
    }
}
