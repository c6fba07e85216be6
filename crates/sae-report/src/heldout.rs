//! Held-out scoring: rows are split by document into a fit half and a score half; a unit's
//! hypothesis is chosen on the fit half (where its in-sample F1 is measured) and its precision,
//! recall and F1 are measured again on the score half, which the choice never saw.
//!
//! The split is a deterministic hash of the document id (seeded), so every row of a document,
//! and every context cut from it, lands in the same half, and every group of units of one report
//! (and every report built with the same seed) uses the same split. Stores without document ids
//! split by context (a break in positions starts a new one) or, lacking positions too, by blocks
//! of [`BLOCK_ROWS`] rows.

use serde::{Deserialize, Serialize};

use crate::cooccur::{GlobalCounts, UnitCooccur};
use crate::explain::{explain, Explanation, Hypothesis};

/// Rows per split unit when a store has neither document ids nor positions.
pub const BLOCK_ROWS: u64 = 128;

/// The hash behind the split (splitmix64 finaliser).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Whether the document (or context) with key `doc` belongs to the score (held-out) half.
pub fn is_heldout(doc: u64, seed: u64) -> bool {
    mix(doc ^ mix(seed ^ 0x4E1D_0075)) & 1 == 1
}

/// Assigns each row of a stream its split key: the document id when stored, else a running
/// context counter.
#[derive(Clone, Debug, Default)]
pub struct SplitKeys {
    context: u64,
    rows_in_context: u64,
    started: bool,
}

impl SplitKeys {
    /// The key of the next row: `doc` when the store has document ids; otherwise the index of
    /// the current context (`continues` = the row continues the previous row's context).
    pub fn next(&mut self, doc: Option<u32>, has_positions: bool, continues: bool) -> u64 {
        if let Some(d) = doc {
            return d as u64;
        }
        let block_full = !has_positions && self.rows_in_context >= BLOCK_ROWS;
        if self.started && (!continues || block_full) {
            self.context += 1;
            self.rows_in_context = 0;
        }
        self.started = true;
        self.rows_in_context += 1;
        self.context
    }
}

/// The counts of a hypothesis on one half: (|A∩H|, |H|), hits a lower bound when the unit's
/// counters overflowed.
pub fn counts(h: &Hypothesis, unit: &UnitCooccur, global: &GlobalCounts) -> (u64, u64) {
    match h {
        Hypothesis::Token { token } => (unit.cur.get(*token) as u64, global.cur(*token)),
        Hypothesis::TokenSet { tokens } => tokens.iter().fold((0, 0), |(h, s), &t| {
            (h + unit.cur.get(t) as u64, s + global.cur(t))
        }),
        Hypothesis::PrevToken { token } => (unit.prev.get(*token) as u64, global.prev(*token)),
        Hypothesis::Bigram { prev, token } => (
            unit.bigram.get(crate::cooccur::pack_bigram(*prev, *token)) as u64,
            global.bigram(*prev, *token),
        ),
    }
}

/// A unit's explanation chosen on the fit half and scored on both halves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HalfScores {
    /// Scored on the held-out half (the score every summary uses).
    pub heldout: Explanation,
    /// Scored on the fit half, where it was chosen (in-sample).
    pub in_sample: Explanation,
}

/// One half's counts: the unit's counters, the exact counts of every row, and |A|.
pub struct Half<'a> {
    /// Counters of the unit's active rows in this half.
    pub unit: &'a UnitCooccur,
    /// Exact counts over all rows of this half.
    pub global: &'a GlobalCounts,
    /// Rows of this half where the unit is active.
    pub active: u64,
}

/// Chooses the best hypothesis on `fit` (see [`explain`]) and scores it on `fit` and `score`;
/// `None` when the unit never fired on the fit half.
pub fn explain_heldout(
    fit: &Half,
    score: &Half,
    max_set: usize,
    min_gain: f64,
) -> Option<HalfScores> {
    let in_sample = explain(fit.active, fit.unit, fit.global, max_set, min_gain)?;
    let (hits, support) = counts(&in_sample.hypothesis, score.unit, score.global);
    let heldout = Explanation::score(in_sample.hypothesis.clone(), hits, support, score.active);
    Some(HalfScores { heldout, in_sample })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_deterministic_and_balanced() {
        let held = (0..10_000u64).filter(|&d| is_heldout(d, 0)).count();
        assert!((4_700..5_300).contains(&held), "{held} of 10000 held out");
        assert_eq!(is_heldout(17, 3), is_heldout(17, 3));
        let differ = (0..1000u64)
            .filter(|&d| is_heldout(d, 0) != is_heldout(d, 1))
            .count();
        assert!(differ > 350, "seeds give different splits ({differ})");
    }

    #[test]
    fn keys_follow_documents_then_contexts_then_blocks() {
        let mut k = SplitKeys::default();
        assert_eq!(k.next(Some(7), true, false), 7);
        let mut k = SplitKeys::default();
        let keys: Vec<u64> = [false, true, true, false, true]
            .iter()
            .map(|&c| k.next(None, true, c))
            .collect();
        assert_eq!(keys, vec![0, 0, 0, 1, 1]);
        let mut k = SplitKeys::default();
        let keys: Vec<u64> = (0..300).map(|_| k.next(None, false, true)).collect();
        assert_eq!((keys[127], keys[128], keys[256]), (0, 1, 2));
    }

    #[test]
    fn heldout_counts_by_hand() {
        // Fit half: token 1 on 3 active rows of 3 rows of token 1 -> in-sample F1 1.
        // Score half: token 1 occurs 4 times, the unit fires on 2 of them and on 2 other rows:
        // hits 2, support 4, active 4 -> precision 0.5, recall 0.5, F1 0.5.
        let (mut gf, mut uf) = (GlobalCounts::default(), UnitCooccur::new(8));
        for _ in 0..3 {
            gf.add(1, None);
            uf.add(1, None);
        }
        gf.add(2, None);
        let (mut gs, mut us) = (GlobalCounts::default(), UnitCooccur::new(8));
        for (t, a) in [
            (1, true),
            (1, true),
            (1, false),
            (1, false),
            (5, true),
            (6, true),
        ] {
            gs.add(t, None);
            if a {
                us.add(t, None);
            }
        }
        let fit = Half {
            unit: &uf,
            global: &gf,
            active: 3,
        };
        let score = Half {
            unit: &us,
            global: &gs,
            active: 4,
        };
        let s = explain_heldout(&fit, &score, 5, 0.01).unwrap();
        assert_eq!(s.in_sample.hypothesis, Hypothesis::Token { token: 1 });
        assert!((s.in_sample.f1 - 1.0).abs() < 1e-12);
        assert_eq!(
            (s.heldout.hits, s.heldout.support, s.heldout.active),
            (2, 4, 4)
        );
        assert!((s.heldout.f1 - 0.5).abs() < 1e-12);
        assert!((s.heldout.precision - 0.5).abs() < 1e-12);
        let none = Half {
            unit: &UnitCooccur::new(8),
            global: &gf,
            active: 0,
        };
        assert!(explain_heldout(&none, &score, 5, 0.01).is_none());
    }
}
