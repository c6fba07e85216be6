//! A synth run interrupted after some shards and resumed ends with the same files as an
//! uninterrupted run; different settings are refused.

use sae_synth::{generate, SynthConfig, SynthError};

fn cfg() -> SynthConfig {
    let mut c = SynthConfig::new(30, 8, 0.1, 2_500);
    c.shard_rows = 500;
    c.seed = 5;
    c
}

#[test]
fn resumed_run_matches_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (full, cut) = (tmp.path().join("full"), tmp.path().join("cut"));
    generate(&cfg(), &full, false, |_| {}).unwrap();
    // Interrupt after two shards (a panic stands in for a kill between shards).
    let interrupted = std::panic::catch_unwind(|| {
        generate(&cfg(), &cut, false, |rows| assert!(rows < 1_000, "stop")).unwrap();
    });
    assert!(interrupted.is_err());
    assert!(
        sae_store::Store::open(&cut).is_err(),
        "incomplete store must not open"
    );
    let mut other = cfg();
    other.seed = 6;
    let err = generate(&other, &cut, true, |_| {}).unwrap_err();
    assert!(matches!(err, SynthError::ResumeMismatch { .. }), "{err}");
    let mut seen = Vec::new();
    generate(&cfg(), &cut, true, |rows| seen.push(rows)).unwrap();
    assert_eq!(
        seen.first(),
        Some(&1_000),
        "resume must start after the kept shards"
    );
    for name in [
        "manifest.json",
        "ground_truth.safetensors",
        "shard-00000.safetensors",
        "shard-00004.safetensors",
    ] {
        let a = std::fs::read(full.join(name)).unwrap();
        let b = std::fs::read(cut.join(name)).unwrap();
        assert_eq!(a, b, "{name} differs");
    }
}

/// A hierarchical run resumed ends with the same hierarchy.json as an uninterrupted one (the
/// held-out rows' firing features included); resuming with another hierarchy, or none, is refused.
#[test]
fn resumed_hierarchical_run_matches_and_checks_the_hierarchy() {
    let hier = |parents| {
        let mut c = cfg();
        c.hierarchy = Some(sae_synth::HierarchySpec {
            parents,
            children: 2,
        });
        c.eval_frac = 0.5;
        c
    };
    let tmp = tempfile::tempdir().unwrap();
    let (full, cut) = (tmp.path().join("full"), tmp.path().join("cut"));
    generate(&hier(3), &full, false, |_| {}).unwrap();
    // Interrupted inside the held-out rows (they start at row 1250).
    let interrupted = std::panic::catch_unwind(|| {
        generate(&hier(3), &cut, false, |rows| assert!(rows < 1_500, "stop")).unwrap();
    });
    assert!(interrupted.is_err());
    for other in [hier(4), cfg()] {
        let err = generate(&other, &cut, true, |_| {}).unwrap_err();
        assert!(matches!(err, SynthError::ResumeMismatch { .. }), "{err}");
    }
    generate(&hier(3), &cut, true, |_| {}).unwrap();
    for name in ["hierarchy.json", "shard-00004.safetensors"] {
        let a = std::fs::read(full.join(name)).unwrap();
        let b = std::fs::read(cut.join(name)).unwrap();
        assert_eq!(a, b, "{name} differs");
    }
    let h = sae_store::Hierarchy::read(&full).unwrap().unwrap();
    assert_eq!(h.eval_firing.len(), 1250);
}
