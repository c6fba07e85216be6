//! Logit-lens effects of decoder directions: the most promoted and most suppressed tokens.

use crate::schema::LogitEffects;

/// The `k` largest and `k` smallest entries of `logits` ([vocab]), ties by token id.
pub fn logit_effects(logits: &[f32], k: usize) -> LogitEffects {
    let mut idx: Vec<u32> = (0..logits.len() as u32)
        .filter(|&i| logits[i as usize].is_finite())
        .collect();
    idx.sort_by(|&a, &b| {
        logits[b as usize]
            .total_cmp(&logits[a as usize])
            .then(a.cmp(&b))
    });
    let promoted = idx
        .iter()
        .take(k)
        .map(|&i| (i, logits[i as usize]))
        .collect();
    let suppressed = idx
        .iter()
        .rev()
        .take(k)
        .map(|&i| (i, logits[i as usize]))
        .collect();
    LogitEffects {
        promoted,
        suppressed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_extremes() {
        let e = logit_effects(&[0.5, -2.0, 3.0, 1.0, -1.0], 2);
        assert_eq!(e.promoted, vec![(2, 3.0), (3, 1.0)]);
        assert_eq!(e.suppressed, vec![(1, -2.0), (4, -1.0)]);
    }
}
