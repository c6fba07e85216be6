//! The graph: candidates by |attribution|, their links, pruning by influence on the target.

use std::collections::HashMap;

use super::nodes::candidates;
use super::prune::{prune, Adjacency, Role};
use super::{Graph, GraphConfig, Link, Node, NodeKind, Replacement};
use crate::error::Result;

impl Replacement<'_> {
    /// The pruned graph (see [`GraphConfig`]): nodes sorted tokens, latents and errors by decreasing
    /// influence, the target last; links by decreasing |weight|.
    pub fn graph(&mut self, cfg: &GraphConfig) -> Result<Graph> {
        let all = self.all_nodes()?;
        let is_scored = |n: &Node| matches!(n.kind, NodeKind::Latent | NodeKind::Error);
        let candidate_nodes = all.iter().filter(|n| is_scored(n)).count();
        let mut nodes = candidates(all, cfg.max_nodes);
        let links = self.links(&nodes)?;
        let index: HashMap<&str, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect();
        let mut adj = Adjacency::new(nodes.len());
        // Which link each adjacency entry is, row by row.
        let mut entry: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
        for (k, l) in links.iter().enumerate() {
            let (s, t) = (index[l.source.as_str()], index[l.target.as_str()]);
            adj.push(s, t, l.weight as f64);
            entry[t].push(k);
        }
        let roles: Vec<Role> = nodes
            .iter()
            .map(|n| match n.kind {
                NodeKind::Latent => Role::Latent,
                NodeKind::Error => Role::Error,
                NodeKind::Token => Role::Token,
                NodeKind::Target => Role::Target,
            })
            .collect();
        let p = prune(&adj, &roles, cfg.node_threshold, cfg.edge_threshold)?;
        let mut keep_link = vec![false; links.len()];
        for (t, row) in p.edges.iter().enumerate() {
            for (k, &kept) in row.iter().enumerate() {
                keep_link[entry[t][k]] = kept;
            }
        }
        let mut links: Vec<Link> = links
            .into_iter()
            .zip(keep_link)
            .filter_map(|(l, k)| k.then_some(l))
            .collect();
        links.sort_by(|a, b| b.weight.abs().total_cmp(&a.weight.abs()));
        for (n, &inf) in nodes.iter_mut().zip(&p.influence) {
            n.influence = inf as f32;
        }
        let scored_nodes = nodes.iter().filter(|n| is_scored(n)).count();
        let mut kept: Vec<Node> = nodes
            .into_iter()
            .zip(&p.nodes)
            .filter_map(|(n, &k)| k.then_some(n))
            .collect();
        // Tokens first, the target last (stable): latents and errors by decreasing influence.
        kept.sort_by(|a, b| {
            let rank = |n: &Node| match n.kind {
                NodeKind::Token => 0,
                NodeKind::Latent | NodeKind::Error => 1,
                NodeKind::Target => 2,
            };
            rank(a).cmp(&rank(b)).then(match rank(a) {
                1 => b.influence.total_cmp(&a.influence),
                _ => std::cmp::Ordering::Equal,
            })
        });
        Ok(Graph {
            nodes: kept,
            links,
            target_value: self.target_value,
            candidate_nodes,
            scored_nodes,
            node_influence_share: p.node_share,
            edge_influence_share: p.edge_share,
        })
    }
}
