//! Which latents fire: per-row TopK, batch-wide BatchTopK and the AuxK choice among dead latents.
//! Plain loops over pre-activations; they return masks/indices used by every step implementation.

/// Indices of the `k` largest positive values of `row`, largest first (ties: lower index first).
pub fn topk_row(row: &[f32], k: usize, out: &mut Vec<u32>) {
    out.clear();
    if k == 0 {
        return;
    }
    // Small sorted buffer (descending) of (value, index); most values fail the `> last` check.
    let mut vals: Vec<f32> = Vec::with_capacity(k + 1);
    for (j, &v) in row.iter().enumerate() {
        if v <= 0.0 || (vals.len() == k && v <= vals[k - 1]) {
            continue;
        }
        let pos = vals.partition_point(|&w| w >= v);
        vals.insert(pos, v);
        out.insert(pos, j as u32);
        if vals.len() > k {
            vals.pop();
            out.pop();
        }
    }
}

/// TopK mask of pre-activations `z` [rows, d_sae]: 1 where a latent is among its row's k largest
/// positive values, else 0.
pub fn topk_mask(z: &[f32], d_sae: usize, k: usize) -> Vec<f32> {
    let mut mask = vec![0f32; z.len()];
    let mut idx = Vec::with_capacity(k + 1);
    for (row, m) in z.chunks(d_sae).zip(mask.chunks_mut(d_sae)) {
        topk_row(row, k, &mut idx);
        for &j in &idx {
            m[j as usize] = 1.0;
        }
    }
    mask
}

/// AuxK mask: per row, the `k_aux` largest positive pre-activations among latents with `dead[j]`.
pub fn auxk_mask(z: &[f32], d_sae: usize, dead: &[bool], k_aux: usize) -> Vec<f32> {
    let mut mask = vec![0f32; z.len()];
    let dead_idx: Vec<usize> = (0..d_sae).filter(|&j| dead[j]).collect();
    if dead_idx.is_empty() || k_aux == 0 {
        return mask;
    }
    let mut buf = vec![0f32; dead_idx.len()];
    let mut idx = Vec::with_capacity(k_aux + 1);
    for (row, m) in z.chunks(d_sae).zip(mask.chunks_mut(d_sae)) {
        for (b, &j) in buf.iter_mut().zip(&dead_idx) {
            *b = row[j];
        }
        topk_row(&buf, k_aux, &mut idx);
        for &i in &idx {
            m[dead_idx[i as usize]] = 1.0;
        }
    }
    mask
}

/// BatchTopK mask: 1 for the `k * rows` largest positive values of the whole batch `z` [rows, d_sae].
/// Returns the mask and the smallest kept value (None when nothing is positive).
pub fn batchtopk_mask(z: &[f32], k_total: usize) -> (Vec<f32>, Option<f32>) {
    let mut mask = vec![0f32; z.len()];
    // Branch-free gather of the positive values (about half of them are: a filtered `collect`
    // mispredicts on every other element).
    let mut pos = vec![0f32; z.len()];
    let mut n = 0;
    for &v in z {
        pos[n] = v;
        n += (v > 0.0) as usize;
    }
    pos.truncate(n);
    if pos.is_empty() || k_total == 0 {
        return (mask, None);
    }
    let keep = k_total.min(pos.len());
    let thr = if keep == pos.len() {
        pos.iter().copied().fold(f32::INFINITY, f32::min)
    } else {
        let nth = pos.len() - keep;
        let (_, t, _) = pos.select_nth_unstable_by(nth, |a, b| a.total_cmp(b));
        *t
    };
    // Values equal to the threshold: keep in index order until `keep` are taken.
    let above = z.iter().filter(|v| **v > thr).count();
    let mut ties_left = keep - above;
    for (m, &v) in mask.iter_mut().zip(z) {
        if v > thr {
            *m = 1.0;
        } else if v == thr && ties_left > 0 {
            *m = 1.0;
            ties_left -= 1;
        }
    }
    (mask, Some(thr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topk_on_a_hand_example() {
        let z = [
            0.5, -1.0, 3.0, 2.0, 0.1, /* row 2 */ -1.0, -2.0, 0.3, -0.5, -0.1,
        ];
        let m = topk_mask(&z, 5, 2);
        assert_eq!(m, vec![0., 0., 1., 1., 0., 0., 0., 1., 0., 0.]);
        let mut idx = Vec::new();
        topk_row(&z[..5], 3, &mut idx);
        assert_eq!(idx, vec![2, 3, 0]);
        // Ties: lower index wins.
        topk_row(&[1.0, 2.0, 2.0, 2.0], 2, &mut idx);
        assert_eq!(idx, vec![1, 2]);
    }

    #[test]
    fn batchtopk_on_a_hand_example() {
        // Two rows of 3, k = 2 -> the 4 largest positive values of the batch, row 2 gets 3 of them.
        let z = [0.1, 5.0, -1.0, 4.0, 3.0, 2.0];
        let (m, thr) = batchtopk_mask(&z, 4);
        assert_eq!(m, vec![0., 1., 0., 1., 1., 1.]);
        assert_eq!(thr, Some(2.0));
        // Fewer positive values than asked: all positive kept.
        let (m, thr) = batchtopk_mask(&[-1.0, 0.5, 0.0, 0.2], 3);
        assert_eq!(m, vec![0., 1., 0., 1.]);
        assert_eq!(thr, Some(0.2));
        let (m, thr) = batchtopk_mask(&[-1.0, 0.0], 1);
        assert_eq!((m, thr), (vec![0., 0.], None));
    }

    #[test]
    fn batchtopk_agrees_with_a_full_sort() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        // Values on a coarse grid so that ties at the threshold happen.
        let z: Vec<f32> = (0..4000)
            .map(|_| (rng.random_range(-40i32..60) as f32) / 8.0)
            .collect();
        for k_total in [1, 17, 500, 1999, 5000] {
            let (m, thr) = batchtopk_mask(&z, k_total);
            // Reference: stable sort of the positive entries by value, descending, then index.
            let mut order: Vec<usize> = (0..z.len()).filter(|&i| z[i] > 0.0).collect();
            order.sort_by(|&a, &b| z[b].total_cmp(&z[a]).then(a.cmp(&b)));
            order.truncate(k_total);
            let mut want = vec![0f32; z.len()];
            order.iter().for_each(|&i| want[i] = 1.0);
            assert_eq!(m, want, "k_total {k_total}");
            assert_eq!(thr, order.last().map(|&i| z[i]), "k_total {k_total}");
        }
    }

    #[test]
    fn auxk_only_picks_dead_latents() {
        let z = [5.0, 1.0, 2.0, 3.0];
        let dead = [false, true, true, false];
        assert_eq!(auxk_mask(&z, 4, &dead, 1), vec![0., 0., 1., 0.]);
        assert_eq!(auxk_mask(&z, 4, &[false; 4], 1), vec![0.; 4]);
    }
}
