//! Row-wise TopK selection on the host: keep the k largest values of each row, ReLU them, zero the rest.

/// values: [n, width] row-major -> [n, width]: in each row the `k` largest entries (ties broken by
/// lower index) are kept and clamped at 0; every other entry is 0. `k >= width` keeps every entry.
pub fn topk_relu_rows(values: &[f32], width: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0f32; values.len()];
    if width == 0 || k == 0 {
        return out;
    }
    let mut idx: Vec<usize> = Vec::with_capacity(width);
    for (row, dst) in values.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
        if k >= width {
            for (o, v) in dst.iter_mut().zip(row) {
                *o = v.max(0.0);
            }
            continue;
        }
        idx.clear();
        idx.extend(0..width);
        // Descending by value, ascending by index on ties: a strict total order, so the chosen set
        // does not depend on the selection algorithm.
        idx.select_nth_unstable_by(k - 1, |&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        for &i in &idx[..k] {
            dst[i] = row[i].max(0.0);
        }
    }
    out
}

/// values: [n, width] row-major -> [n, width]: each row split into `k` consecutive groups of
/// width / k entries (`width` a multiple of `k`); in each group only the largest entry (the lower
/// index on ties) is kept, clamped at 0.
pub fn groupmax_relu_rows(values: &[f32], width: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0f32; values.len()];
    if width == 0 || k == 0 {
        return out;
    }
    let group = width / k;
    for (row, dst) in values.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
        for g in 0..k {
            let span = g * group..(g + 1) * group;
            let best = span
                .clone()
                .reduce(|a, b| if row[b] > row[a] { b } else { a })
                .expect("a group has at least one entry");
            dst[best] = row[best].max(0.0);
        }
    }
    out
}

/// Plain reference: sort each row fully and keep the first k.
pub fn topk_relu_rows_reference(values: &[f32], width: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0f32; values.len()];
    for (r, row) in values.chunks_exact(width.max(1)).enumerate() {
        let mut order: Vec<usize> = (0..row.len()).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        for &i in order.iter().take(k) {
            out[r * width + i] = row[i].max(0.0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_k_largest_and_relus_them() {
        let v = [0.5, -1.0, 3.0, 2.0, /* row 2 */ -3.0, -1.0, -2.0, 0.1];
        let out = topk_relu_rows(&v, 4, 2);
        assert_eq!(out, vec![0.0, 0.0, 3.0, 2.0, 0.0, 0.0, 0.0, 0.1]);
    }

    #[test]
    fn groupmax_keeps_the_largest_of_each_group() {
        // Two groups of 3: [0.5, -1, 3] -> 3 at index 2; [-3, -1, -2] -> -1 at index 4, clamped.
        let out = groupmax_relu_rows(&[0.5, -1.0, 3.0, -3.0, -1.0, -2.0], 6, 2);
        assert_eq!(out, vec![0.0, 0.0, 3.0, 0.0, 0.0, 0.0]);
        let out = groupmax_relu_rows(&[1.0, 1.0, 0.2, 0.7], 4, 2);
        assert_eq!(out, vec![1.0, 0.0, 0.0, 0.7]);
    }

    #[test]
    fn ties_go_to_the_lower_index() {
        let out = topk_relu_rows(&[1.0, 1.0, 1.0], 3, 2);
        assert_eq!(out, vec![1.0, 1.0, 0.0]);
    }

    #[test]
    fn fast_path_agrees_with_reference() {
        let mut state = 12345u64;
        let values: Vec<f32> = (0..37 * 53)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
            })
            .collect();
        for k in [1, 5, 52, 53, 60] {
            assert_eq!(
                topk_relu_rows(&values, 53, k),
                topk_relu_rows_reference(&values, 53, k),
                "k = {k}"
            );
        }
    }
}
