//! What the gradient-agreement tests share: running a step into garbage-filled gradient buffers, and
//! comparing a fast step's output and gradients with the reference's.

#![allow(dead_code)]

use sae_train::{ArchConfig, Grads, Params, Step, StepContext, StepOutput};

/// max |a - b| over max |a| (the reference's scale).
pub fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// Runs a step and returns its output with the gradients in the layout of [`Params`].
pub fn run(
    step: &mut dyn Step,
    x: &[f32],
    p: &Params,
    ctx: &StepContext<'_>,
) -> (StepOutput, Params) {
    let mut g = Grads::zeros_for(p);
    // Garbage in the buffers: a step must overwrite every gradient, not accumulate into it.
    g.w_dec.iter_mut().for_each(|v| *v = f32::NAN);
    g.b_dec.iter_mut().for_each(|v| *v = f32::NAN);
    g.w_enc_t.iter_mut().for_each(|v| *v = 7.0);
    if let Some(w) = g.w_skip.as_mut() {
        w.iter_mut().for_each(|v| *v = f32::NAN);
    }
    let out = step.run(x, p, ctx, &mut g).unwrap();
    (out, g.to_params(p.transcoder))
}

/// Loss, aux loss and FVU to `tol` relative, the firing counts, L0 and kept minimum exactly, and every
/// gradient buffer to `tol` relative.
pub fn assert_agree(
    reference: &(StepOutput, Params),
    fast: &(StepOutput, Params),
    tol: f32,
    what: &str,
) {
    let (r, f) = (&reference.0, &fast.0);
    let rel = |a: f64, b: f64| (a - b).abs() / a.abs().max(1e-3);
    let t = tol as f64;
    assert!(
        rel(r.loss, f.loss) < t,
        "{what}: loss {} vs {}",
        r.loss,
        f.loss
    );
    assert!(rel(r.aux, f.aux) < t, "{what}: aux {} vs {}", r.aux, f.aux);
    assert!(rel(r.fvu, f.fvu) < t, "{what}: fvu {} vs {}", r.fvu, f.fvu);
    assert_eq!(r.fired, f.fired, "{what}: fired");
    assert_eq!(r.l0, f.l0, "{what}: l0");
    assert_eq!(r.min_kept, f.min_kept, "{what}: min_kept");
    let (rb, fb) = (reference.1.buffers(), fast.1.buffers());
    assert_eq!(rb.len(), fb.len(), "{what}: the same parameters");
    for ((name, a), (_, b)) in rb.into_iter().zip(fb) {
        let d = max_rel_diff(a, b);
        assert!(d < tol, "{what}: {name}: relative difference {d}");
    }
}

/// TopK with the AuxK recipe's defaults.
pub fn topk(k: usize) -> ArchConfig {
    ArchConfig::TopK {
        k,
        auxk_coef: 1.0 / 32.0,
        k_aux: None,
    }
}

/// BatchTopK with the AuxK recipe's defaults.
pub fn batchtopk(k: usize) -> ArchConfig {
    ArchConfig::BatchTopK {
        k,
        auxk_coef: 1.0 / 32.0,
        k_aux: None,
        threshold_ema: 0.99,
    }
}
