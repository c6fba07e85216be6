//! Pruning by influence on hand-made DAGs: influence equals the path sums computed by hand, and
//! pruning keeps exactly the nodes and edges the thresholds and circuit-tracer's rules say.

use sae_circuit::{influence, prune, threshold_score, Adjacency, Role};

/// token 0 -> latent 1 (3), token 0 -> latent 2 (-1), latent 1 -> latent 2 (1), latent 1 -> target 4
/// (2), latent 2 -> target (6), error 3 -> target (-2).
fn small() -> Adjacency {
    let mut a = Adjacency::new(5);
    a.push(0, 1, 3.0);
    a.push(0, 2, -1.0);
    a.push(1, 2, 1.0);
    a.push(1, 4, 2.0);
    a.push(2, 4, 6.0);
    a.push(3, 4, -2.0);
    a
}

const ROLES: [Role; 5] = [
    Role::Token,
    Role::Latent,
    Role::Latent,
    Role::Error,
    Role::Target,
];

#[test]
fn influence_is_the_sum_over_paths_of_normalised_weights() {
    let n = small().normalized();
    // Row-normalised by |weights|: latent 1: {0: 1}; latent 2: {0: 1/2, 1: 1/2};
    // target: {1: 2/10, 2: 6/10, 3: 2/10}.
    let inf = influence(&n, &[0.0, 0.0, 0.0, 0.0, 1.0]).unwrap();
    // Paths to the target: 2: 0.6. 1: direct 0.2, via 2: 0.5 * 0.6 -> 0.5. 3: 0.2.
    // 0: via 1 (1 * 0.5) + via 2 directly (0.5 * 0.6) = 0.8.
    let by_hand = [0.8, 0.5, 0.6, 0.2, 0.0];
    for (i, (a, b)) in inf.iter().zip(by_hand).enumerate() {
        assert!((a - b).abs() < 1e-12, "node {i}: {a} vs {b}");
    }
    // A cycle is an error, not a hang.
    let mut cyc = Adjacency::new(2);
    cyc.push(0, 1, 1.0);
    cyc.push(1, 0, 1.0);
    assert!(influence(&cyc.normalized(), &[1.0, 0.0]).is_err());
}

#[test]
fn threshold_score_keeps_the_smallest_prefix_reaching_the_share() {
    let v = [1.0, 5.0, 3.0, 1.0];
    assert_eq!(threshold_score(&v, 0.5), 5.0);
    assert_eq!(threshold_score(&v, 0.8), 3.0);
    assert_eq!(threshold_score(&v, 0.81), 1.0);
    assert_eq!(threshold_score(&v, 1.0), 1.0);
}

#[test]
fn pruning_keeps_the_expected_nodes_and_edges() {
    let a = small();
    // Influences of latents / errors: 2: 0.6, 1: 0.5, 3: 0.2 (tokens 0.8 and the target 0 count in the
    // total of 2.1, as circuit-tracer counts them). 0.8 of 2.1 = 1.68: 0.8 + 0.6 + 0.5 = 1.9 reaches it
    // at 0.5, so the error (0.2) goes; tokens and the target stay.
    let p = prune(&a, &ROLES, 0.8, 1.0).unwrap();
    assert_eq!(p.nodes, [true, true, true, false, true]);
    assert!((p.node_share - 1.9 / 2.1).abs() < 1e-12);
    // With the error gone, the target's row is {1: 0.25, 2: 0.75}; edge scores = normalised weight x
    // the influence of the edge's target (target 1; 2: 0.75; 1: 0.25 + 0.5 * 0.75 = 0.625):
    // 0->1: 0.625, 0->2: 0.375, 1->2: 0.375, 1->T: 0.25, 2->T: 0.75. Total 2.375; 0.98 of it needs
    // every edge but the smallest... 2.375 - 0.25 = 2.125 < 2.3275, so all five stay.
    assert_eq!(
        p.edges,
        vec![
            vec![],
            vec![true],
            vec![true, true],
            vec![],
            vec![true, true, false]
        ]
    );
    // An edge threshold of 0.6 (1.425): 0.75 + 0.625 = 1.375, + 0.375 (two tied) -> both 0.375 kept,
    // 1 -> T (0.25) dropped; every node still has what it needs.
    let p = prune(&a, &ROLES, 0.8, 0.6).unwrap();
    assert_eq!(
        p.edges,
        vec![
            vec![],
            vec![true],
            vec![true, true],
            vec![],
            vec![false, true, false]
        ]
    );
    assert_eq!(p.nodes, [true, true, true, false, true]);
    // 0.3 (0.7125): only 2 -> T (0.75). Latent 1 has no kept edge and latent 2 no incoming one: both
    // go, and only the token and the target remain.
    let p = prune(&a, &ROLES, 0.8, 0.3).unwrap();
    assert_eq!(p.nodes, [true, false, false, false, true]);
    assert!(p.edges.iter().flatten().all(|&k| !k));
    // Thresholds of 1 keep everything.
    let p = prune(&a, &ROLES, 1.0, 1.0).unwrap();
    assert!(p.nodes.iter().all(|&k| k) && p.edges.iter().flatten().all(|&k| k));
    assert!(prune(&a, &ROLES, 1.5, 0.5).is_err());
}
