//! `sae bench train` on its smallest case: `--steps` is a minimum even above the usual cap of 100
//! timed steps (it used to panic there), and the JSON row reports what was run.

mod common;

use common::sae;

#[test]
fn bench_train_runs_at_least_the_steps_asked_for() {
    let o = sae(&[
        "bench", "train", "--arch", "topk", "--d-in", "128", "--steps", "120", "--json",
    ]);
    assert!(
        o.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    let rows = v["results"].as_array().expect("results");
    assert_eq!(rows.len(), 1, "one architecture at one shape");
    let r = &rows[0];
    assert_eq!(r["arch"], "topk");
    assert_eq!(r["d_in"], 128);
    assert!(r["steps"].as_u64().unwrap() >= 120, "{r}");
    // TopK keeps exactly k = 5 latents per row, and the step contains a matmul of the shape.
    assert_eq!(r["l0"].as_f64().unwrap(), 5.0);
    assert!(r["step_over_matmul"].as_f64().unwrap() > 0.5, "{r}");
}
