//! The rows a batch can see: the current batch plus a short tail of the previous one, so that
//! context windows can reach back across batch boundaries with bounded memory.

use crate::cooccur::continues;

/// A batch of rows with every unit's activation.
#[derive(Clone, Copy, Debug)]
pub struct UnitBatch<'a> {
    /// Store row of the first row.
    pub start_row: u64,
    /// Number of units (columns).
    pub units: usize,
    /// acts: [n, units] row-major.
    pub acts: &'a [f32],
    /// [n].
    pub token_ids: &'a [u32],
    /// [n], when the store has them.
    pub doc_ids: Option<&'a [u32]>,
    /// [n], when the store has them.
    pub positions: Option<&'a [u32]>,
}

impl UnitBatch<'_> {
    /// Rows in the batch.
    pub fn rows(&self) -> usize {
        self.token_ids.len()
    }
}

/// The last few rows of earlier batches.
#[derive(Clone, Debug, Default)]
pub struct Tail {
    /// Store row of the first kept row.
    pub start_row: u64,
    /// [m, units].
    pub acts: Vec<f32>,
    /// [m].
    pub tokens: Vec<u32>,
    /// [m].
    pub docs: Vec<Option<u32>>,
    /// [m].
    pub positions: Vec<Option<u32>>,
    /// [m]: row continues the row before it.
    pub cont: Vec<bool>,
}

/// Tail rows (negative indices) followed by the current batch (indices 0..n).
pub struct RowView<'a> {
    tail: &'a Tail,
    batch: &'a UnitBatch<'a>,
    /// [n]: batch row continues the row before it (row 0 against the tail's last row).
    cont: Vec<bool>,
}

impl<'a> RowView<'a> {
    /// Joins `tail` and `batch`, working out which rows continue their predecessor's context.
    pub fn new(tail: &'a Tail, batch: &'a UnitBatch<'a>) -> Self {
        let n = batch.rows();
        let mut cont = Vec::with_capacity(n);
        for i in 0..n {
            let (doc, pos) = (batch.doc_ids.map(|d| d[i]), batch.positions.map(|p| p[i]));
            let c = if i > 0 {
                let (pd, pp) = (
                    batch.doc_ids.map(|d| d[i - 1]),
                    batch.positions.map(|p| p[i - 1]),
                );
                continues(pd, pp, doc, pos)
            } else if let Some(last) = tail.tokens.len().checked_sub(1) {
                let adjacent = tail.start_row + last as u64 + 1 == batch.start_row;
                adjacent && continues(tail.docs[last], tail.positions[last], doc, pos)
            } else {
                false
            };
            cont.push(c);
        }
        RowView { tail, batch, cont }
    }

    /// Number of tail rows (valid indices start at minus this).
    pub fn tail_len(&self) -> isize {
        self.tail.tokens.len() as isize
    }

    /// Rows in the current batch.
    pub fn len(&self) -> isize {
        self.batch.rows() as isize
    }

    /// Whether row `j` continues row `j - 1` (false for the oldest tail row).
    pub fn cont(&self, j: isize) -> bool {
        if j >= 0 {
            self.cont[j as usize]
        } else {
            let k = (j + self.tail_len()) as usize;
            k > 0 && self.tail.cont[k]
        }
    }

    /// Token of row `j`.
    pub fn token(&self, j: isize) -> u32 {
        if j >= 0 {
            self.batch.token_ids[j as usize]
        } else {
            self.tail.tokens[(j + self.tail_len()) as usize]
        }
    }

    /// Activation of `unit` at row `j`.
    pub fn act(&self, j: isize, unit: usize) -> f32 {
        let u = self.batch.units;
        if j >= 0 {
            self.batch.acts[j as usize * u + unit]
        } else {
            self.tail.acts[(j + self.tail_len()) as usize * u + unit]
        }
    }

    /// Store row of row `j`.
    pub fn store_row(&self, j: isize) -> u64 {
        (self.batch.start_row as i64 + j as i64) as u64
    }

    /// Document id and position of batch row `i`.
    pub fn doc_pos(&self, i: usize) -> (Option<u32>, Option<u32>) {
        (
            self.batch.doc_ids.map(|d| d[i]),
            self.batch.positions.map(|p| p[i]),
        )
    }

    /// The previous token of batch row `i` in the same context, if any.
    pub fn prev_token(&self, i: usize) -> Option<u32> {
        let j = i as isize;
        (self.cont(j) && j > -self.tail_len()).then(|| self.token(j - 1))
    }

    /// The tail to keep for the next batch: the last `keep` rows of tail + batch.
    pub fn next_tail(&self, keep: usize) -> Tail {
        let total = self.tail_len() + self.len();
        let from = (total - keep as isize).max(0) - self.tail_len();
        let u = self.batch.units;
        let mut t = Tail {
            start_row: self.store_row(from),
            ..Tail::default()
        };
        for j in from..self.len() {
            for unit in 0..u {
                t.acts.push(self.act(j, unit));
            }
            t.tokens.push(self.token(j));
            let (doc, pos) = if j >= 0 {
                self.doc_pos(j as usize)
            } else {
                let k = (j + self.tail_len()) as usize;
                (self.tail.docs[k], self.tail.positions[k])
            };
            t.docs.push(doc);
            t.positions.push(pos);
            t.cont.push(j > from && self.cont(j));
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_joins_batches() {
        let acts1 = [1.0, 2.0, 3.0];
        let toks1 = [10, 11, 12];
        let docs1 = [0, 0, 0];
        let b1 = UnitBatch {
            start_row: 0,
            units: 1,
            acts: &acts1,
            token_ids: &toks1,
            doc_ids: Some(&docs1),
            positions: None,
        };
        let empty = Tail::default();
        let v1 = RowView::new(&empty, &b1);
        assert_eq!(v1.prev_token(0), None);
        assert_eq!(v1.prev_token(2), Some(11));
        let tail = v1.next_tail(2);
        assert_eq!(tail.tokens, vec![11, 12]);
        let acts2 = [4.0, 5.0];
        let toks2 = [13, 14];
        let docs2 = [0, 1];
        let b2 = UnitBatch {
            start_row: 3,
            units: 1,
            acts: &acts2,
            token_ids: &toks2,
            doc_ids: Some(&docs2),
            positions: None,
        };
        let v2 = RowView::new(&tail, &b2);
        assert_eq!(v2.prev_token(0), Some(12));
        assert_eq!(v2.prev_token(1), None); // new document
        assert_eq!(v2.act(-2, 0), 2.0);
        assert_eq!(v2.store_row(-2), 1);
        assert!(v2.cont(-1) && !v2.cont(-2));
    }
}
