//! The fused selections against a full sort (independent of the code under test): ties, values at
//! or below zero, k = 1 and k = d_sae, AuxK restricted to dead latents (also as the dense block read
//! straight from the pre-activations), BatchTopK's batch threshold.

use rand::{Rng, SeedableRng};

use super::batch::{select_batchtopk, BatchScratch};
use super::select::{select_auxk, select_topk, DenseBlock, RowSets, SelectScratch};

/// Pre-activations on a coarse grid (so ties happen), about 40% of them <= 0 after the bias.
fn problem(rows: usize, d: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let z = (0..rows * d)
        .map(|_| rng.random_range(-40i32..60) as f32 / 8.0)
        .collect();
    let b = (0..d)
        .map(|_| rng.random_range(-4i32..4) as f32 / 8.0)
        .collect();
    (z, b)
}

/// Flat indices of the `k` largest positive values among `cand` (value desc, then index asc).
fn by_full_sort(vals: &[f32], cand: impl Iterator<Item = usize>, k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = cand.filter(|&i| vals[i] > 0.0).collect();
    order.sort_by(|&a, &b| vals[b].partial_cmp(&vals[a]).unwrap().then(a.cmp(&b)));
    order.truncate(k);
    order.sort_unstable();
    order
}

/// Row r of `sets` as sorted (index, value) pairs.
fn row_sorted(sets: &RowSets, r: usize) -> Vec<(usize, f32)> {
    let (idx, val) = sets.row(r);
    let mut v: Vec<(usize, f32)> = idx
        .iter()
        .map(|&j| j as usize)
        .zip(val.iter().copied())
        .collect();
    v.sort_by_key(|p| p.0);
    v
}

#[test]
fn row_topk_and_auxk_agree_with_a_full_sort() {
    for (rows, d) in [(70, 50), (33, 16), (5, 1000)] {
        let (z, b) = problem(rows, d, rows as u64);
        let act_vals: Vec<f32> = z.iter().enumerate().map(|(i, v)| v + b[i % d]).collect();
        let dead: Vec<u32> = (0..d as u32).filter(|j| j % 3 != 1).collect();
        for (k, k_aux) in [(1, 1), (5, 7), (d, d)] {
            let (mut act, mut aux) = (RowSets::default(), RowSets::default());
            let mut s = SelectScratch::default();
            select_topk(&z, &b, k, &dead, k_aux, &mut s, &mut act, &mut aux, None);
            assert_eq!(act.rows(), rows);
            for r in 0..rows {
                let row = &act_vals[r * d..(r + 1) * d];
                let want = by_full_sort(row, 0..d, k);
                let got = row_sorted(&act, r);
                assert_eq!(
                    got.iter().map(|p| p.0).collect::<Vec<_>>(),
                    want,
                    "{rows}x{d} k {k} row {r}"
                );
                assert!(got.iter().all(|&(j, v)| v == row[j]));
                let want_aux = by_full_sort(row, dead.iter().map(|&j| j as usize), k_aux);
                let got_aux = row_sorted(&aux, r);
                assert_eq!(
                    got_aux.iter().map(|p| p.0).collect::<Vec<_>>(),
                    want_aux,
                    "aux row {r}"
                );
                assert!(got_aux.iter().all(|&(j, v)| v == row[j]));
            }
        }
        // Nothing dead: no AuxK entries.
        let (mut act, mut aux) = (RowSets::default(), RowSets::default());
        select_topk(
            &z,
            &b,
            3,
            &[],
            8,
            &mut SelectScratch::default(),
            &mut act,
            &mut aux,
            None,
        );
        assert_eq!(aux.nnz(), 0);
        assert!(act.nnz() > 0);
    }
}

#[test]
fn batch_topk_agrees_with_a_full_sort() {
    let (rows, d) = (64, 90);
    let (z, b) = problem(rows, d, 9);
    let vals: Vec<f32> = z.iter().enumerate().map(|(i, v)| v + b[i % d]).collect();
    let n_pos = vals.iter().filter(|v| **v > 0.0).count();
    // One scratch for all calls: later calls start from the previous threshold (too high, too
    // low or absent), and must find the same exact selection as a fresh histogram would.
    let mut s = BatchScratch::default();
    for k_total in [1, 17, 640, n_pos - 1, n_pos, n_pos + 100, 640, 17, 5000, 1] {
        let mut act = RowSets::default();
        let t = select_batchtopk(&z, &b, k_total, &mut s, &mut act, None, 0).threshold;
        let want = by_full_sort(&vals, 0..vals.len(), k_total);
        let mut got: Vec<usize> = (0..rows)
            .flat_map(|r| row_sorted(&act, r).into_iter().map(move |(j, _)| r * d + j))
            .collect();
        got.sort_unstable();
        assert_eq!(got, want, "k_total {k_total}");
        let min = want.iter().map(|&i| vals[i]).fold(f32::INFINITY, f32::min);
        assert_eq!(t, Some(min), "k_total {k_total}");
        assert!((0..rows).all(|r| row_sorted(&act, r)
            .iter()
            .all(|&(j, v)| v == vals[r * d + j])));
    }
    let mut act = RowSets::default();
    let neg: Vec<f32> = z.iter().map(|v| -v.abs() - 10.0).collect();
    // Nothing positive: no threshold, and a dense AuxK block still gets its (all-zero) rows.
    let mut block = vec![7.0f32; rows * 2];
    let dense = Some(DenseBlock {
        dead: &[0, 5],
        out: &mut block,
    });
    let none = select_batchtopk(&neg, &b, 5, &mut s, &mut act, dense, 3);
    assert_eq!(none.threshold, None);
    assert_eq!(none.dense_kept, 0);
    assert!(block.iter().all(|v| *v == 0.0));
    assert_eq!(act.nnz(), 0);
}

#[test]
fn dense_auxk_block_keeps_the_largest_positive_dead_values() {
    // Short dead rows, and dead rows longer than the selection's short-row bound.
    for (rows, d) in [(70, 50), (6, 1000)] {
        dense_block_case(rows, d);
    }
}

fn dense_block_case(rows: usize, d: usize) {
    let (z, b) = problem(rows, d, 9);
    let vals: Vec<f32> = z.iter().enumerate().map(|(i, v)| v + b[i % d]).collect();
    let dead: Vec<u32> = (0..d as u32).filter(|j| j % 3 != 1).collect();
    let nd = dead.len();
    let mut s = SelectScratch::default();
    for k_aux in [1, 5, 12, 300, nd, nd + 4] {
        // Filled beside the rows' TopK (which it must leave alone), by the AuxK-only selection and
        // beside BatchTopK's batch selection (a fresh one, then one hinted by the last threshold),
        // from a block holding the previous call's values.
        let mut bs = BatchScratch::default();
        for mode in ["topk", "auxk", "batch", "batch"] {
            let mut block = vec![7.0f32; rows * nd];
            let (mut act, mut aux) = (RowSets::default(), RowSets::default());
            let dense = Some(DenseBlock {
                dead: &dead,
                out: &mut block,
            });
            let kept = match mode {
                "topk" => select_topk(&z, &b, 3, &[], k_aux, &mut s, &mut act, &mut aux, dense),
                "auxk" => select_auxk(&z, &b, &[], k_aux, &mut s, &mut aux, dense),
                _ => {
                    let sel = select_batchtopk(&z, &b, 3 * rows, &mut bs, &mut act, dense, k_aux);
                    let all = by_full_sort(&vals, 0..vals.len(), 3 * rows);
                    let got: usize = (0..rows).map(|r| row_sorted(&act, r).len()).sum();
                    assert_eq!(got, all.len(), "the batch selection is unchanged");
                    sel.dense_kept
                }
            };
            assert_eq!(aux.nnz(), 0, "no sparse AuxK entries beside the block");
            let mut total = 0;
            for r in 0..rows {
                let row = &vals[r * d..(r + 1) * d];
                if mode == "topk" {
                    let got: Vec<usize> = row_sorted(&act, r).iter().map(|p| p.0).collect();
                    assert_eq!(got, by_full_sort(row, 0..d, 3), "row {r}");
                }
                let want = by_full_sort(row, dead.iter().map(|&j| j as usize), k_aux);
                let got: Vec<usize> = (0..nd)
                    .filter(|&n| block[r * nd + n] != 0.0)
                    .map(|n| dead[n] as usize)
                    .collect();
                assert_eq!(got, want, "k_aux {k_aux} row {r}");
                for (n, &j) in dead.iter().enumerate() {
                    let v = block[r * nd + n];
                    assert!(v == 0.0 || v == row[j as usize], "row {r} latent {j}");
                }
                total += want.len();
            }
            assert_eq!(kept, total);
        }
    }
}
