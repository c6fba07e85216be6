//! The absorption score on a hand-made case.

use sae_model::AbsorptionStats;
use sae_store::{Hierarchy, ParentFeature};

/// Parent 0 = e1 with children 1 = e2 and 2 = e3; parent 3 = -e1 with child 4 = -e2 never fires.
const FEATURES: [f32; 15] = [
    1.0, 0.0, 0.0, //
    0.0, 1.0, 0.0, //
    0.0, 0.0, 1.0, //
    -1.0, 0.0, 0.0, //
    0.0, -1.0, 0.0,
];
/// Latent 0: the parent; latent 1: child 1 with the parent absorbed (cos 0.71 with each);
/// latent 2: child 2 alone; latents 3 and 4: the second parent and its child.
const DECODER: [f32; 15] = [
    2.0, 0.0, 0.0, //
    0.5, 0.5, 0.0, //
    0.0, 0.0, 3.0, //
    -1.0, 0.0, 0.0, //
    0.0, -1.0, 0.1,
];

fn hierarchy(eval_firing: Vec<Vec<u32>>) -> Hierarchy {
    Hierarchy {
        parents: vec![
            ParentFeature {
                feature: 0,
                children: vec![1, 2],
            },
            ParentFeature {
                feature: 3,
                children: vec![4],
            },
        ],
        eval_firing,
    }
}

#[test]
fn absorbed_rows_by_hand() {
    let firing = vec![
        vec![0, 1], // parent latent off, child 1's (absorbing) latent on: absorbed
        vec![0, 1], // parent latent on: not absorbed
        vec![0, 2], // parent latent off, child 2's latent on but it lacks the parent: not absorbed
        vec![0],    // parent alone: not counted
        vec![0, 1], // parent latent and child latent both off: a miss, not absorption
        vec![],     // nothing: not counted
    ];
    #[rustfmt::skip]
    let f: Vec<f32> = vec![
        0.0, 1.0, 0.0, 0.0, 0.0,
        1.0, 1.0, 0.0, 0.0, 0.0,
        0.0, 0.0, 1.0, 0.0, 0.0,
        1.0, 0.0, 0.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 0.0, 0.0,
    ];
    let mut stats = AbsorptionStats::new(&FEATURES, &DECODER, 3, hierarchy(firing)).unwrap();
    stats.push(&f[..10], 5).unwrap();
    stats.push(&f[10..], 5).unwrap();
    let m = stats.finish().unwrap();
    let p = &m.parents[0];
    assert_eq!((p.feature, p.latent, p.rows, p.absorbed), (0, 0, 4, 1));
    let q = &m.parents[1];
    assert_eq!((q.feature, q.latent, q.rows, q.absorbed), (3, 3, 0, 0));
    // The parent without rows is left out of the mean.
    assert_eq!(m.mean, Some(0.25));
}

#[test]
fn row_counts_must_match_the_hierarchy_file() {
    let firing = vec![vec![0, 1], vec![0, 1]];
    let mut stats = AbsorptionStats::new(&FEATURES, &DECODER, 3, hierarchy(firing)).unwrap();
    stats.push(&[0.0; 5], 5).unwrap();
    let err = stats.finish().unwrap_err().to_string();
    assert!(err.contains("lists 2 held-out rows"), "{err}");
    let err = stats.push(&[0.0; 10], 5).unwrap_err().to_string();
    assert!(err.contains("the store has more"), "{err}");
    let mut h = hierarchy(vec![]);
    h.parents[1].children.push(7);
    let err = AbsorptionStats::new(&FEATURES, &DECODER, 3, h)
        .unwrap_err()
        .to_string();
    assert!(err.contains("feature 7"), "{err}");
}
