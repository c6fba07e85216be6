//! Learning-rate and sparsity-coefficient schedules (pure functions of the step).

/// Learning rate at `step` (0-based): linear warm-up from 0 over `warmup_frac * steps` steps, constant,
/// then linear decay to 0 over the last `decay_frac * steps` steps (the last step still gets a small lr).
pub fn lr_at(step: u64, steps: u64, peak: f64, warmup_frac: f64, decay_frac: f64) -> f64 {
    let s = step as f64 + 1.0;
    let n = steps as f64;
    let warm = (warmup_frac * n).round();
    let decay = (decay_frac * n).round();
    let mut lr = peak;
    if warm > 0.0 && s <= warm {
        lr = peak * s / warm;
    }
    let decay_start = n - decay;
    if decay > 0.0 && s > decay_start {
        lr = lr.min(peak * (n - s + 1.0) / (decay + 1.0));
    }
    lr
}

/// A coefficient that rises linearly from 0 to `target` over the first `warmup_frac * steps` steps.
pub fn warmup_coef(step: u64, steps: u64, target: f64, warmup_frac: f64) -> f64 {
    let warm = (warmup_frac * steps as f64).round();
    if warm <= 0.0 {
        return target;
    }
    target * ((step as f64 + 1.0) / warm).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lr_schedule_values() {
        // 100 steps, 10 warm-up, 20 decay, peak 1.0.
        let f = |s| lr_at(s, 100, 1.0, 0.1, 0.2);
        assert_eq!(f(0), 0.1);
        assert_eq!(f(4), 0.5);
        assert_eq!(f(9), 1.0);
        assert_eq!(f(50), 1.0);
        assert_eq!(f(79), 1.0);
        // Step 80 is the first decayed step: (100 - 81 + 1) / 21 = 20/21.
        assert!((f(80) - 20.0 / 21.0).abs() < 1e-12);
        assert!((f(99) - 1.0 / 21.0).abs() < 1e-12);
        // No warm-up, no decay: constant.
        assert_eq!(lr_at(0, 10, 0.5, 0.0, 0.0), 0.5);
        assert_eq!(lr_at(9, 10, 0.5, 0.0, 0.0), 0.5);
    }

    #[test]
    fn warmup_coef_values() {
        assert_eq!(warmup_coef(0, 100, 5.0, 0.05), 1.0);
        assert_eq!(warmup_coef(4, 100, 5.0, 0.05), 5.0);
        assert_eq!(warmup_coef(50, 100, 5.0, 0.05), 5.0);
        assert_eq!(warmup_coef(0, 100, 5.0, 0.0), 5.0);
    }
}
