//! The page of `sae attribute --html`: per prompt, the tokens shaded by LRP relevance and the attribution
//! graph laid out by hook (rows, tokens at the bottom, the target on top) and position (columns). Static
//! HTML + inline SVG, no script; every text from the tokenizer or the model is escaped.

use std::collections::HashMap;
use std::fmt::Write as _;

use sae_circuit::{Graph, NodeKind};
use sae_report::escape_html as esc;

/// Column width and row height of the graph, in px.
const COL: f64 = 96.0;
const ROW: f64 = 90.0;

/// What one prompt's section shows.
pub struct Section<'a> {
    pub prompt: &'a str,
    pub tokens: &'a [String],
    pub relevance: &'a [f32],
    pub target: String,
    pub graph: Option<&'a Graph>,
}

/// Blue for positive, red for negative, alpha by |v| / max.
fn shade(v: f32, max: f32) -> String {
    let a = if max > 0.0 {
        (v.abs() / max).min(1.0)
    } else {
        0.0
    };
    let (r, g, b) = if v >= 0.0 {
        (37, 99, 235)
    } else {
        (220, 38, 38)
    };
    format!("rgba({r},{g},{b},{a:.3})")
}

fn tokens_html(s: &Section) -> String {
    let max = s.relevance.iter().fold(0f32, |m, v| m.max(v.abs()));
    let mut out = String::from("<p class=\"tokens\">");
    for (t, v) in s.tokens.iter().zip(s.relevance) {
        let _ = write!(
            out,
            "<span class=\"tok\" style=\"background:{}\" title=\"relevance {v:.4}\">{}</span>",
            shade(*v, max),
            esc(t)
        );
    }
    out + "</p>"
}

/// Where each node goes: rows = hooks in forward order between the tokens (bottom) and the target (top),
/// columns = positions, nodes of one cell side by side. -> (row labels, height, node id -> (x, y))
fn layout(g: &Graph) -> (Vec<&str>, f64, HashMap<&str, (f64, f64)>) {
    let mut rows: Vec<&str> = g.nodes.iter().filter_map(|n| n.hook.as_deref()).collect();
    rows.dedup();
    rows.sort_by_key(|h| sae_lm::Hook::parse(h));
    rows.dedup();
    let row_of = |n: &sae_circuit::Node| -> usize {
        match n.kind {
            NodeKind::Token => 0,
            NodeKind::Target => rows.len() + 1,
            _ => {
                1 + rows
                    .iter()
                    .position(|h| Some(*h) == n.hook.as_deref())
                    .unwrap_or(0)
            }
        }
    };
    let height = ROW * (rows.len() + 2) as f64;
    let mut count: HashMap<(usize, usize), usize> = HashMap::new();
    let mut at: HashMap<&str, (f64, f64)> = HashMap::new();
    for n in &g.nodes {
        let cell = (row_of(n), n.position);
        let k = count.entry(cell).or_insert(0);
        let x = 160.0 + COL * n.position as f64 + 14.0 + 16.0 * (*k % 5) as f64;
        let y = height - ROW * (cell.0 as f64 + 0.5) - 14.0 * (*k / 5) as f64;
        *k += 1;
        at.insert(n.id.as_str(), (x, y));
    }
    (rows, height, at)
}

/// The graph as SVG; latents link to `report/<hook>/index.html#latents/<i>` when `report` is given.
fn graph_svg(g: &Graph, tokens: &[String], report: Option<&str>) -> String {
    let (rows, height, at) = layout(g);
    let width = COL * tokens.len().max(1) as f64 + 160.0;
    let max_w = g.links.iter().fold(0f32, |m, l| m.max(l.weight.abs()));
    // Radii and colours scale within tokens and within features (BOS's relevance would dwarf the rest).
    let max_of = |tokens: bool| {
        g.nodes
            .iter()
            .filter(|n| n.kind != NodeKind::Target && (n.kind == NodeKind::Token) == tokens)
            .fold(f32::MIN_POSITIVE, |m, n| m.max(n.attribution.abs()))
    };
    let (max_tok, max_feat) = (max_of(true), max_of(false));
    let mut svg = format!(
        "<svg class=\"graph\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\">"
    );
    for (i, label) in std::iter::once("tokens")
        .chain(rows.iter().copied())
        .chain(["target"])
        .enumerate()
    {
        let y = height - ROW * (i as f64 + 0.5);
        let _ = write!(
            svg,
            "<text class=\"row\" x=\"4\" y=\"{y:.1}\">{}</text>",
            esc(label)
        );
    }
    for l in &g.links {
        let (Some(a), Some(b)) = (at.get(l.source.as_str()), at.get(l.target.as_str())) else {
            continue;
        };
        let w = 0.5 + 3.5 * (l.weight.abs() / max_w.max(f32::MIN_POSITIVE));
        let _ = write!(
            svg,
            "<line class=\"link\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{}\" \
             stroke-width=\"{w:.2}\"><title>{} -&gt; {}: {:.4}</title></line>",
            a.0,
            a.1,
            b.0,
            b.1,
            shade(l.weight, max_w),
            esc(&l.source),
            esc(&l.target),
            l.weight
        );
    }
    for n in &g.nodes {
        let (x, y) = at[n.id.as_str()];
        let max_a = match n.kind {
            NodeKind::Token => max_tok,
            NodeKind::Target => n.attribution.abs().max(f32::MIN_POSITIVE),
            _ => max_feat,
        };
        svg.push_str(&node_svg(n, (x, y), max_a, tokens, report));
    }
    for (p, t) in tokens.iter().enumerate() {
        let x = 160.0 + COL * p as f64 + 4.0;
        let _ = write!(
            svg,
            "<text class=\"col\" x=\"{x:.1}\" y=\"{:.1}\">{}</text>",
            height - 4.0,
            esc(t)
        );
    }
    svg + "</svg>"
}

/// One node: a circle sized and shaded by |attribution| / max_a, a latent wrapped in a link to its card.
fn node_svg(
    n: &sae_circuit::Node,
    (x, y): (f64, f64),
    max_a: f32,
    tokens: &[String],
    report: Option<&str>,
) -> String {
    let r = 3.0 + 5.0 * (n.attribution.abs() / max_a).sqrt();
    let label = match n.kind {
        NodeKind::Token => format!("{:?}", tokens.get(n.position).map_or("", |t| t.as_str())),
        _ => n.id.clone(),
    };
    let circle = format!(
        "<circle class=\"node {kind:?}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{r:.1}\" fill=\"{}\">\
             <title>{} activation {:.4} attribution {:.4}{}</title></circle>",
        shade(n.attribution, max_a),
        esc(&label),
        n.activation,
        n.attribution,
        n.explanation
            .as_deref()
            .map(|e| format!(": {}", esc(e)))
            .unwrap_or_default(),
        kind = n.kind
    );
    match (report, n.kind, &n.hook, n.latent) {
        (Some(dir), NodeKind::Latent, Some(hook), Some(i)) => {
            let href = esc(&format!("{dir}/{hook}/index.html#latents/{i}"));
            format!("<a href=\"{href}\">{circle}</a>")
        }
        _ => circle,
    }
}

/// The whole page.
pub fn page(model: &str, sections: &[Section], report: Option<&str>) -> String {
    let mut body = String::new();
    for s in sections {
        let _ = write!(
            body,
            "<section><h2>{}</h2><p class=\"target\">target: {}</p>{}",
            esc(s.prompt),
            esc(&s.target),
            tokens_html(s)
        );
        if let Some(g) = s.graph {
            let kept = g.nodes.iter().filter(|n| n.hook.is_some()).count();
            let _ = write!(
                body,
                "<p class=\"summary\">{kept} of {} latent / error nodes, {} links</p>{}",
                g.candidate_nodes,
                g.links.len(),
                graph_svg(g, s.tokens, report)
            );
        }
        body.push_str("</section>");
    }
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>sae attribute: {}</title><style>\
         body{{font-family:sans-serif;margin:1.5em}} .tok{{padding:2px 1px;margin:0 1px;\
         white-space:pre;border-radius:3px}} .tokens{{font-family:monospace;font-size:1.1em}} \
         .row,.col{{font-size:11px;fill:#444}} .link{{stroke-linecap:round}}\
         </style></head><body><h1>{}</h1>{body}</body></html>\n",
        esc(model),
        esc(model)
    )
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_markup() {
        assert_eq!(esc("<b a=\"x\">&'"), "&lt;b a=&quot;x&quot;&gt;&amp;&#39;");
    }
}
