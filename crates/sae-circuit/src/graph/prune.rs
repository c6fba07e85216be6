//! Pruning by influence, as circuit-tracer prunes its attribution graphs (Ameisen et al. 2025).
//!
//! The adjacency matrix A holds, in row t, the direct effects of every source s on node t. Each row is
//! normalised by absolute values (|A[t, s]| / sum_s |A[t, s]|), so a row says which share of t's inputs
//! each source makes. The influence of node s on the target is the target row of A + A^2 + A^3 + ...
//! = (I - A)^-1 - I: the sum over every path from s to the target of the product of the normalised
//! weights on it. The graph is a DAG (edges only run to later hooks), so the series ends after at most
//! as many terms as the longest path; it is summed by iterating v <- v A from the target's indicator.
//!
//! Nodes are kept by decreasing influence until they carry `node_threshold` of the total (tokens and
//! the target always kept); then, on the matrix restricted to the kept nodes, each edge scores its
//! normalised weight times the influence of its target node (the target itself counting 1), and edges
//! are kept until they carry `edge_threshold` of the total. Last, latent and error nodes left without a
//! kept outgoing edge, and latents left without a kept incoming one, are dropped, until none is.
//! A threshold of 1 keeps every node (every nonzero edge among the kept nodes) and drops nothing after.

use crate::error::{CircuitError, Result};

/// What a node is to the pruning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An SAE latent: kept only with a kept incoming and a kept outgoing edge.
    Latent,
    /// An error node: a source only; kept only with a kept outgoing edge.
    Error,
    /// A token: always kept.
    Token,
    /// The target: always kept; its influence seeds the series.
    Target,
}

/// A sparse adjacency matrix: `rows[t]` lists (source, weight) of the edges into node t.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Adjacency {
    /// Edges into each node.
    pub rows: Vec<Vec<(usize, f64)>>,
}

impl Adjacency {
    /// An empty matrix over `n` nodes.
    pub fn new(n: usize) -> Adjacency {
        Adjacency {
            rows: vec![Vec::new(); n],
        }
    }

    /// Adds the edge source -> target of this weight.
    pub fn push(&mut self, source: usize, target: usize, weight: f64) {
        self.rows[target].push((source, weight));
    }

    /// Nodes.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Each row's |weights| divided by their sum (rows summing to less than 1e-10 divided by 1e-10).
    pub fn normalized(&self) -> Adjacency {
        let rows = self
            .rows
            .iter()
            .map(|row| {
                let sum = row.iter().map(|(_, w)| w.abs()).sum::<f64>().max(1e-10);
                row.iter().map(|&(s, w)| (s, w.abs() / sum)).collect()
            })
            .collect();
        Adjacency { rows }
    }

    /// v A: out[s] = sum_t v[t] A[t, s].
    fn left_mul(&self, v: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.len()];
        for (row, &vt) in self.rows.iter().zip(v) {
            if vt != 0.0 {
                for &(s, w) in row {
                    out[s] += vt * w;
                }
            }
        }
        out
    }
}

/// seed (A + A^2 + ...): the influence of every node on the seeded nodes through all paths. An error
/// when the series does not end (a cycle).
pub fn influence(a: &Adjacency, seed: &[f64]) -> Result<Vec<f64>> {
    let mut current = a.left_mul(seed);
    let mut total = current.clone();
    let mut steps = 0;
    while current.iter().any(|&v| v != 0.0) {
        if steps > a.len() {
            return Err(CircuitError::Invalid(
                "the attribution graph has a cycle: influence does not converge".into(),
            ));
        }
        current = a.left_mul(&current);
        for (t, c) in total.iter_mut().zip(&current) {
            *t += c;
        }
        steps += 1;
    }
    Ok(total)
}

/// The smallest score of the largest-first prefix whose sum reaches `share` of the total (the last
/// score when the share is never reached): keeping every score >= it keeps that share.
pub fn threshold_score(scores: &[f64], share: f64) -> f64 {
    let mut sorted = scores.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let total: f64 = sorted.iter().sum();
    let mut acc = 0.0;
    for &s in &sorted {
        acc += s;
        if acc >= share * total {
            return s;
        }
    }
    sorted.last().copied().unwrap_or(0.0)
}

/// What pruning kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Pruning {
    /// Each node's influence on the target in the whole graph.
    pub influence: Vec<f64>,
    /// Which nodes are kept.
    pub nodes: Vec<bool>,
    /// Which edges are kept, as `rows` of the adjacency given.
    pub edges: Vec<Vec<bool>>,
    /// Share of the total node influence the nodes kept by the node threshold carry (before the
    /// dangling nodes are dropped).
    pub node_share: f64,
    /// Share of the total edge score the edges kept by the edge threshold carry (before the dangling
    /// nodes are dropped).
    pub edge_share: f64,
}

/// Prunes `adj` (nodes of these roles, one target) by influence on the target; see the module docs.
pub fn prune(
    adj: &Adjacency,
    roles: &[Role],
    node_threshold: f64,
    edge_threshold: f64,
) -> Result<Pruning> {
    let n = adj.len();
    if roles.len() != n {
        return Err(CircuitError::Invalid(format!(
            "{} roles for {n} nodes",
            roles.len()
        )));
    }
    for t in [node_threshold, edge_threshold] {
        if !(0.0..=1.0).contains(&t) {
            return Err(CircuitError::Invalid(format!(
                "thresholds are shares between 0 and 1, not {t}"
            )));
        }
    }
    let seed: Vec<f64> = roles
        .iter()
        .map(|r| (*r == Role::Target) as u8 as f64)
        .collect();
    let inf = influence(&adj.normalized(), &seed)?;
    let cut = threshold_score(&inf, node_threshold);
    let fixed = |i: usize| matches!(roles[i], Role::Token | Role::Target);
    let all_nodes = node_threshold >= 1.0;
    let mut nodes: Vec<bool> = (0..n)
        .map(|i| all_nodes || fixed(i) || inf[i] >= cut)
        .collect();
    let node_share = share(&inf, |i| nodes[i]);
    let (kept, scores) = edge_scores(adj, &nodes, &seed)?;
    let flat: Vec<f64> = scores.iter().flatten().copied().collect();
    let edge_cut = threshold_score(&flat, edge_threshold);
    let mut edges: Vec<Vec<bool>> = scores
        .iter()
        .zip(&kept.rows)
        .map(|(row, raw)| {
            row.iter()
                .zip(raw)
                .map(|(&s, &(_, w))| match edge_threshold >= 1.0 {
                    true => w != 0.0,
                    false => s > 0.0 && s >= edge_cut,
                })
                .collect()
        })
        .collect();
    let total_edge: f64 = flat.iter().sum();
    let kept_edge: f64 = scores
        .iter()
        .zip(&edges)
        .flat_map(|(s, e)| s.iter().zip(e).filter(|(_, &k)| k).map(|(v, _)| *v))
        .sum();
    let edge_share = if total_edge > 0.0 {
        kept_edge / total_edge
    } else {
        1.0
    };
    if !(all_nodes && edge_threshold >= 1.0) {
        drop_dangling(adj, roles, &mut nodes, &mut edges);
    }
    Ok(Pruning {
        influence: inf,
        nodes,
        edges,
        node_share,
        edge_share,
    })
}

/// The matrix restricted to the kept nodes (the other entries 0), and each entry's score: its
/// normalised weight x the influence of its target node (the seeded target counting its seed).
fn edge_scores(
    adj: &Adjacency,
    nodes: &[bool],
    seed: &[f64],
) -> Result<(Adjacency, Vec<Vec<f64>>)> {
    let mut kept = Adjacency::new(adj.len());
    for (t, row) in adj.rows.iter().enumerate() {
        for &(s, w) in row {
            kept.rows[t].push((s, if nodes[t] && nodes[s] { w } else { 0.0 }));
        }
    }
    let norm = kept.normalized();
    let mut reach = influence(&norm, seed)?;
    for (r, s) in reach.iter_mut().zip(seed) {
        *r += s;
    }
    let scores = norm
        .rows
        .iter()
        .zip(&reach)
        .map(|(row, r)| row.iter().map(|&(_, w)| w * r).collect())
        .collect();
    Ok((kept, scores))
}

/// Share of the total of `v` on the indices `keep` picks (1 when the total is 0).
fn share(v: &[f64], keep: impl Fn(usize) -> bool) -> f64 {
    let total: f64 = v.iter().sum();
    let kept: f64 = v
        .iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(_, x)| x)
        .sum();
    if total > 0.0 {
        kept / total
    } else {
        1.0
    }
}

/// Drops latents and errors without a kept outgoing edge and latents without a kept incoming edge (and
/// every edge of a dropped node) until nothing changes.
fn drop_dangling(adj: &Adjacency, roles: &[Role], nodes: &mut [bool], edges: &mut [Vec<bool>]) {
    loop {
        for (t, row) in adj.rows.iter().enumerate() {
            for (k, &(s, _)) in row.iter().enumerate() {
                edges[t][k] &= nodes[t] && nodes[s];
            }
        }
        let mut out = vec![false; nodes.len()];
        let mut inc = vec![false; nodes.len()];
        for (t, row) in adj.rows.iter().enumerate() {
            for (k, &(s, _)) in row.iter().enumerate() {
                if edges[t][k] {
                    out[s] = true;
                    inc[t] = true;
                }
            }
        }
        let mut changed = false;
        for (i, keep) in nodes.iter_mut().enumerate() {
            let ok = match roles[i] {
                Role::Latent => out[i] && inc[i],
                Role::Error => out[i],
                Role::Token | Role::Target => true,
            };
            if *keep && !ok {
                *keep = false;
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
}
