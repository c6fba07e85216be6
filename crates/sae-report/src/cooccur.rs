//! Token counting for explanations: exact global counts of current tokens, previous tokens and
//! bigrams over the store, and per-unit bounded (Misra–Gries) counts of the same while the unit is active.

use crate::heavy::{IdMap, MisraGries};

/// Packs a (previous token, current token) bigram into one key.
pub fn pack_bigram(prev: u32, tok: u32) -> u64 {
    ((prev as u64) << 32) | tok as u64
}

/// Splits a packed bigram into (previous token, current token).
pub fn unpack_bigram(key: u64) -> (u32, u32) {
    ((key >> 32) as u32, key as u32)
}

/// Exact counts over every row of a store.
#[derive(Clone, Debug, Default)]
pub struct GlobalCounts {
    rows: u64,
    cur: Vec<u64>,
    prev: Vec<u64>,
    bigram: IdMap<u64, u64>,
}

fn bump(v: &mut Vec<u64>, t: u32) {
    let i = t as usize;
    if i >= v.len() {
        v.resize(i + 1, 0);
    }
    v[i] += 1;
}

impl GlobalCounts {
    /// Counts one row with token `tok` whose previous token in the same context is `prev`.
    pub fn add(&mut self, tok: u32, prev: Option<u32>) {
        self.rows += 1;
        bump(&mut self.cur, tok);
        if let Some(p) = prev {
            bump(&mut self.prev, p);
            *self.bigram.entry(pack_bigram(p, tok)).or_insert(0) += 1;
        }
    }

    /// Rows counted.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Rows whose token is `t`.
    pub fn cur(&self, t: u32) -> u64 {
        self.cur.get(t as usize).copied().unwrap_or(0)
    }

    /// Rows whose previous token (same context) is `t`.
    pub fn prev(&self, t: u32) -> u64 {
        self.prev.get(t as usize).copied().unwrap_or(0)
    }

    /// Rows whose previous token is `p` and token is `t`.
    pub fn bigram(&self, p: u32, t: u32) -> u64 {
        self.bigram.get(&pack_bigram(p, t)).copied().unwrap_or(0)
    }
}

/// Bounded counts of what surrounds one unit's active rows.
#[derive(Clone, Debug)]
pub struct UnitCooccur {
    /// Current token of active rows.
    pub cur: MisraGries<u32>,
    /// Previous token of active rows (rows without one are not counted).
    pub prev: MisraGries<u32>,
    /// (previous, current) bigram of active rows.
    pub bigram: MisraGries<u64>,
}

impl UnitCooccur {
    /// Empty counters with the given capacities (current token, previous token and bigram).
    pub fn new(capacity: usize) -> Self {
        UnitCooccur {
            cur: MisraGries::new(capacity),
            prev: MisraGries::new(capacity),
            bigram: MisraGries::new(capacity),
        }
    }

    /// Counts one active row.
    pub fn add(&mut self, tok: u32, prev: Option<u32>) {
        self.cur.add(tok);
        if let Some(p) = prev {
            self.prev.add(p);
            self.bigram.add(pack_bigram(p, tok));
        }
    }
}

/// Whether a row continues the previous row's context: same document (when documents are
/// stored) and the next position (when positions are stored). Without either column,
/// consecutive rows are taken as one running text.
pub fn continues(
    prev_doc: Option<u32>,
    prev_pos: Option<u32>,
    doc: Option<u32>,
    pos: Option<u32>,
) -> bool {
    let same_doc = match (prev_doc, doc) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    let next_pos = match (prev_pos, pos) {
        (Some(a), Some(b)) => a.checked_add(1) == Some(b),
        _ => true,
    };
    same_doc && next_pos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_counts() {
        let mut g = GlobalCounts::default();
        g.add(5, None);
        g.add(6, Some(5));
        g.add(5, Some(6));
        g.add(6, Some(5));
        assert_eq!(g.rows(), 4);
        assert_eq!(g.cur(5), 2);
        assert_eq!(g.cur(6), 2);
        assert_eq!(g.cur(99), 0);
        assert_eq!(g.prev(5), 2);
        assert_eq!(g.bigram(5, 6), 2);
        assert_eq!(g.bigram(6, 5), 1);
        assert_eq!(unpack_bigram(pack_bigram(7, 9)), (7, 9));
    }

    #[test]
    fn contexts_break_at_documents_and_position_gaps() {
        assert!(continues(Some(1), Some(4), Some(1), Some(5)));
        assert!(!continues(Some(1), Some(4), Some(2), Some(5)));
        assert!(!continues(Some(1), Some(4), Some(1), Some(0)));
        assert!(!continues(Some(1), Some(4), Some(1), Some(6)));
        assert!(continues(None, None, None, None));
    }
}
