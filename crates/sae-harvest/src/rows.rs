//! Which positions of a packed batch become store rows: special tokens left out unless asked for, the row
//! budget, and norm outliers (attention sinks) left out of every hook's store alike.

use crate::contexts::Context;

/// Rows of one batch: for each kept position, (row in the packed batch, token, doc, position).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Rows {
    pub index: Vec<usize>,
    pub token_ids: Vec<u32>,
    pub doc_ids: Vec<u32>,
    pub positions: Vec<u32>,
}

impl Rows {
    fn keep(&self, keep: &[bool]) -> Rows {
        fn pick<T: Copy>(v: &[T], keep: &[bool]) -> Vec<T> {
            v.iter()
                .zip(keep)
                .filter(|(_, k)| **k)
                .map(|(x, _)| *x)
                .collect()
        }
        Rows {
            index: pick(&self.index, keep),
            token_ids: pick(&self.token_ids, keep),
            doc_ids: pick(&self.doc_ids, keep),
            positions: pick(&self.positions, keep),
        }
    }
}

/// The candidate rows of contexts packed end to end, at most `budget` of them.
pub(crate) fn select_rows(batch: &[Context], keep_special: bool, budget: u64) -> Rows {
    let mut rows = Rows::default();
    let mut offset = 0;
    'outer: for c in batch {
        for (p, (&id, &special)) in c.ids.iter().zip(&c.special).enumerate() {
            if rows.index.len() as u64 >= budget {
                break 'outer;
            }
            if special && !keep_special {
                continue;
            }
            rows.index.push(offset + p);
            rows.token_ids.push(id);
            rows.doc_ids.push(c.doc);
            rows.positions.push(p as u32);
        }
        offset += c.ids.len();
    }
    rows
}

/// Keeps the rows whose norm stays within `ratio` x the median row norm of the batch at every hook.
/// `hosts[h]` is hook h's activations [tokens, width]. The same rows are kept for every hook, so the
/// stores of one harvest stay row-aligned. Returns the rows kept and how many were left out.
pub(crate) fn drop_outliers(
    rows: Rows,
    hosts: &[(Vec<f32>, usize)],
    ratio: Option<f32>,
) -> (Rows, u64) {
    let Some(ratio) = ratio.filter(|r| *r > 0.0) else {
        return (rows, 0);
    };
    let mut keep = vec![true; rows.index.len()];
    for (host, w) in hosts {
        let norms: Vec<f32> = rows
            .index
            .iter()
            .map(|&r| {
                host[r * w..(r + 1) * w]
                    .iter()
                    .map(|v| v * v)
                    .sum::<f32>()
                    .sqrt()
            })
            .collect();
        let mut sorted = norms.clone();
        sorted.sort_by(f32::total_cmp);
        let Some(&median) = sorted.get(sorted.len() / 2) else {
            continue;
        };
        for (k, n) in keep.iter_mut().zip(&norms) {
            *k &= *n <= ratio * median;
        }
    }
    let dropped = keep.iter().filter(|k| !**k).count() as u64;
    (rows.keep(&keep), dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> Rows {
        Rows {
            index: (0..n).collect(),
            token_ids: (0..n as u32).collect(),
            doc_ids: vec![0; n],
            positions: (0..n as u32).collect(),
        }
    }

    #[test]
    fn outliers_at_any_hook_leave_every_store() {
        // Hook A (width 2): row 1 has norm 100 against a median of ~1. Hook B (width 1): row 3 has 50.
        let a = vec![1.0, 0.0, 60.0, 80.0, 0.0, 1.2, 0.9, 0.0, 1.0, 1.0];
        let b = vec![2.0, 2.5, 1.5, 100.0, 2.0];
        let (kept, dropped) = drop_outliers(rows(5), &[(a.clone(), 2), (b.clone(), 1)], Some(10.0));
        assert_eq!(dropped, 2);
        assert_eq!(kept.index, vec![0, 2, 4]);
        assert_eq!(kept.token_ids, vec![0, 2, 4]);
        assert_eq!(kept.positions, vec![0, 2, 4]);
        // A looser ratio keeps hook B's row 3 (50x) but not hook A's row 1 (~100x).
        let (kept, _) = drop_outliers(rows(5), &[(a.clone(), 2), (b.clone(), 1)], Some(60.0));
        assert_eq!(kept.index, vec![0, 2, 3, 4]);
        // No ratio: everything kept.
        let (kept, dropped) = drop_outliers(rows(5), &[(a, 2), (b, 1)], None);
        assert_eq!((kept.index.len(), dropped), (5, 0));
    }

    #[test]
    fn packed_rows_skip_specials_and_stop_at_the_budget() {
        let ctx = |doc, ids: Vec<u32>, special: Vec<bool>| Context {
            doc,
            window: 0,
            ids,
            special,
        };
        let batch = [
            ctx(3, vec![101, 7, 8, 102], vec![true, false, false, true]),
            ctx(4, vec![101, 9, 102], vec![true, false, true]),
        ];
        let r = select_rows(&batch, false, 10);
        assert_eq!(r.index, vec![1, 2, 5]);
        assert_eq!(r.token_ids, vec![7, 8, 9]);
        assert_eq!(r.doc_ids, vec![3, 3, 4]);
        assert_eq!(r.positions, vec![1, 2, 1]);
        let r = select_rows(&batch, true, 5);
        assert_eq!(r.index, vec![0, 1, 2, 3, 4]);
    }
}
