//! `sae attribute --model M --prompt TEXT (--target-token TOK | --logit-diff A B | --loss) [--sae DIR]...
//! --out FILE`: which tokens and which SAE features produce a prediction. Token relevance (LRP and
//! gradient x input), LRP's conservation check, and with SAEs the pruned attribution graph, written as JSON.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use sae_circuit::{
    conservation, relevance, Check, Conservation, Graph, GraphConfig, HookedSae, Replacement,
    Target, EMBED,
};
use sae_lm::{Model, ModelSpec, Rules, TextTokenizer, TokenText};
use serde::Serialize;

use super::attribute_html::{page, Section};
use super::attribute_input::{load_saes, parse_target, read_prompts};

/// Arguments of `sae attribute`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["prompt", "prompts"])))]
#[command(group(clap::ArgGroup::new("what").required(true).args(["target_token", "logit_diff", "loss"])))]
pub struct Args {
    /// Causal LM: Hugging Face id, local folder or .gguf.
    #[arg(long)]
    model: String,
    /// Hub revision of --model.
    #[arg(long)]
    revision: Option<String>,
    /// Never use the network.
    #[arg(long)]
    offline: bool,
    /// Hugging Face hub cache folder (default: $SAE_HF_CACHE, else the usual HF locations).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// The prompt.
    #[arg(long)]
    prompt: Option<String>,
    /// A file of prompts, one per line (blank lines skipped).
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// Target: the next-token logit of this token (its text, e.g. " Paris"; it must be one token).
    #[arg(long)]
    target_token: Option<String>,
    /// Target: logit(A) - logit(B) of the next token.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    logit_diff: Vec<String>,
    /// Target: the mean next-token loss over the prompt.
    #[arg(long)]
    loss: bool,
    /// An SAE folder (its cfg.json names the hook); `DIR@HOOK` checks that it was trained on HOOK.
    /// Repeatable: one SAE per hook.
    #[arg(long)]
    sae: Vec<String>,
    /// Token relevance rules: `lrp` (identity rule on norms and nonlinearities, CP-LRP, uniform rule on
    /// the gated product), `attn-lrp` (AttnLRP: the softmax rule and uniform rules on the attention
    /// products instead of CP-LRP) or `gradient` (plain gradient x input). All three are written; this one
    /// is printed.
    #[arg(long, default_value = "lrp", value_parser = ["lrp", "attn-lrp", "gradient"])]
    rules: String,
    /// Keep nodes until they carry this share of the total influence on the target (circuit-tracer's
    /// pruning; tokens and the target always kept).
    #[arg(long, default_value_t = 0.8)]
    node_threshold: f64,
    /// Then keep links until they carry this share of the total edge influence.
    #[arg(long, default_value_t = 0.98)]
    edge_threshold: f64,
    /// Latent and error nodes (largest |attribution| first) whose links are computed, one backward
    /// pass each, before pruning.
    #[arg(long, default_value_t = 1024)]
    max_nodes: usize,
    /// Check the graph in the real forward pass: the top nodes zero- and mean-ablated one at a time
    /// (measured vs predicted change), and the circuit's faithfulness (everything else mean-ablated).
    #[arg(long, requires = "sae")]
    check: bool,
    /// Nodes ablated one at a time by --check.
    #[arg(long, default_value_t = 10)]
    top_n: usize,
    /// Do not put BOS before the prompt.
    #[arg(long)]
    no_bos: bool,
    /// The graph JSON written (atomically).
    #[arg(long)]
    out: PathBuf,
    /// Also write a page: tokens shaded by LRP relevance, the graph by hook and position.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Where the SAEs' reports are (`sae run`'s OUT/report: DIR/<hook>/report.json, index.html): latent
    /// nodes get their explanation, and the page links them to their dashboard cards.
    #[arg(long)]
    report_dir: Option<String>,
}

/// Fills latent nodes' explanations from DIR/<hook>/report.json (read once per hook; a missing or
/// unreadable report is one warning and no explanations for that hook).
fn explain(g: &mut Graph, dir: &Path, reports: &mut HashMap<String, Option<sae_report::Report>>) {
    for n in g.nodes.iter_mut() {
        let (Some(hook), Some(latent)) = (n.hook.as_deref(), n.latent) else {
            continue;
        };
        let report = reports.entry(hook.to_string()).or_insert_with(|| {
            match sae_report::Report::read(&dir.join(hook)) {
                Ok(r) => Some(r),
                Err(e) => {
                    eprintln!("warning: no explanations for {hook}: {e}");
                    None
                }
            }
        });
        let units = report
            .as_ref()
            .and_then(|r| r.group(sae_report::UnitKind::Latents))
            .map(|g| g.units.as_slice())
            .unwrap_or_default();
        n.explanation = units.get(latent).and_then(|u| u.explanation_text.clone());
    }
}

/// One prompt's result in the JSON.
#[derive(Serialize)]
struct PromptResult {
    prompt: String,
    tokens: Vec<String>,
    token_ids: Vec<u32>,
    target: TargetJson,
    /// Per position: LRP relevance and gradient x input at the embeddings.
    relevance: RelevanceJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    conservation: Option<ConservationJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    graph: Option<Graph>,
    #[serde(skip_serializing_if = "Option::is_none")]
    check: Option<Check>,
}

#[derive(Serialize)]
struct TargetJson {
    kind: &'static str,
    tokens: Vec<String>,
    value: f32,
}

#[derive(Serialize)]
struct RelevanceJson {
    lrp: Vec<f32>,
    attn_lrp: Vec<f32>,
    gradient_x_input: Vec<f32>,
}

#[derive(Serialize)]
struct ConservationJson {
    relevance: f64,
    target: f64,
    bias: f64,
    relative_error: f64,
}

impl From<Conservation> for ConservationJson {
    fn from(c: Conservation) -> Self {
        ConservationJson {
            relevance: c.relevance,
            target: c.target,
            bias: c.bias,
            relative_error: c.relative_error(),
        }
    }
}

#[derive(Serialize)]
struct Output<'a> {
    model: &'a str,
    saes: Vec<String>,
    prompts: Vec<PromptResult>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let spec = ModelSpec {
        id_or_path: a.model.clone(),
        revision: a.revision.clone(),
        offline: a.offline,
        cache_dir: a.cache_dir.clone(),
    };
    let resolved = sae_lm::resolve_model(&spec)
        .with_context(|| format!("cannot resolve model `{}`", a.model))?;
    let model = Model::load(&resolved, &candle_core::Device::Cpu)
        .with_context(|| format!("cannot load model `{}`", a.model))?;
    if !model.is_causal() {
        bail!(
            "`{}` is an encoder ({}), not a causal language model: it has no next-token target",
            a.model,
            model.arch()
        );
    }
    let mut tok = TextTokenizer::load(&resolved)
        .with_context(|| format!("cannot load the tokenizer of `{}`", a.model))?;
    if !a.no_bos {
        tok.prepend_bos();
    }
    let text = TokenText::new(tok);
    let saes = load_saes(&model, &a.sae)?;
    let target = parse_target(a.target_token.as_deref(), &a.logit_diff, text.tokenizer())?;
    let prompts = read_prompts(a.prompt.as_deref(), a.prompts.as_deref())?;
    let cfg = GraphConfig {
        node_threshold: a.node_threshold,
        edge_threshold: a.edge_threshold,
        max_nodes: a.max_nodes,
    };
    let mut results = Vec::with_capacity(prompts.len());
    let mut reports = HashMap::new();
    for prompt in &prompts {
        let check = a.check.then_some(a.top_n);
        let r = attribute_one(&model, &text, prompt, &target, &saes, &cfg, check)
            .with_context(|| format!("cannot attribute the prompt {prompt:?}"))?;
        let mut r = r;
        if let (Some(dir), Some(g)) = (&a.report_dir, r.graph.as_mut()) {
            explain(g, Path::new(dir), &mut reports);
        }
        print_result(&r, &a.rules);
        results.push(r);
    }
    let out = Output {
        model: &a.model,
        saes: saes.iter().map(|s| s.hook.name()).collect(),
        prompts: results,
    };
    let json = serde_json::to_string_pretty(&out)? + "\n";
    sae_store::atomic_write(&a.out, json.as_bytes())
        .with_context(|| format!("cannot write {}", a.out.display()))?;
    println!("wrote {}", a.out.display());
    if let Some(path) = &a.html {
        let sections: Vec<Section> = out
            .prompts
            .iter()
            .map(|r| Section {
                prompt: &r.prompt,
                tokens: &r.tokens,
                relevance: &r.relevance.lrp,
                target: format!("{} {}", r.target.kind, r.target.tokens.join(" - ")),
                graph: r.graph.as_ref(),
            })
            .collect();
        let html = page(&a.model, &sections, a.report_dir.as_deref());
        sae_store::atomic_write(path, html.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn attribute_one(
    model: &Model,
    text: &TokenText,
    prompt: &str,
    target: &Target,
    saes: &[HookedSae],
    cfg: &GraphConfig,
    check_top: Option<usize>,
) -> anyhow::Result<PromptResult> {
    let tok = text.tokenizer();
    let mut ids = tok.prefix().to_vec();
    ids.extend(tok.encode(prompt)?);
    let lrp = relevance(model, &ids, EMBED, target, Rules::LRP)?;
    let gxi = relevance(model, &ids, EMBED, target, Rules::GRADIENT)?;
    let attn_lrp = relevance(model, &ids, EMBED, target, Rules::ATTN_LRP)?;
    let conservation = target
        .is_affine()
        .then(|| conservation(model, &ids, EMBED, target))
        .transpose()?;
    let (graph, check) = if saes.is_empty() {
        (None, None)
    } else {
        let mut rep = Replacement::new(model, &ids, target, saes)?;
        rep.skip_prefix(tok.prefix().len());
        let graph = rep.graph(cfg)?;
        let check = check_top.map(|n| rep.check(&graph, n)).transpose()?;
        (Some(graph), check)
    };
    let (kind, target_ids) = match target {
        Target::Logit { token } => ("logit", vec![*token]),
        Target::LogitDiff { a, b } => ("logit_diff", vec![*a, *b]),
        _ => ("loss", vec![]),
    };
    Ok(PromptResult {
        prompt: prompt.to_string(),
        tokens: ids.iter().map(|&i| text.token(i)).collect(),
        token_ids: ids,
        target: TargetJson {
            kind,
            tokens: target_ids.iter().map(|&i| text.token(i)).collect(),
            value: lrp.target,
        },
        relevance: RelevanceJson {
            lrp: lrp.per_position,
            attn_lrp: attn_lrp.per_position,
            gradient_x_input: gxi.per_position,
        },
        conservation: conservation.map(Into::into),
        graph,
        check,
    })
}

fn print_result(r: &PromptResult, rules: &str) {
    println!(
        "{:?}: target {} {} = {:.4}",
        r.prompt,
        r.target.kind,
        r.target.tokens.join(" - "),
        r.target.value
    );
    let values = match rules {
        "lrp" => &r.relevance.lrp,
        "attn-lrp" => &r.relevance.attn_lrp,
        _ => &r.relevance.gradient_x_input,
    };
    println!("  token relevance ({rules}):");
    for (t, v) in r.tokens.iter().zip(values) {
        println!("    {v:>10.4}  {t:?}");
    }
    if let Some(c) = &r.conservation {
        println!(
            "  LRP conservation: relevance {:.5} vs target - bias {:.5} (bias {:.5}), relative error {:.2e}",
            c.relevance,
            c.target - c.bias,
            c.bias,
            c.relative_error
        );
    }
    if let Some(g) = &r.graph {
        let kept: Vec<_> = g.nodes.iter().filter(|n| n.hook.is_some()).collect();
        println!(
            "  graph: {} of {} latent/error nodes kept by influence (share {:.3}; links {}, share {:.3}); \
             top nodes by influence:",
            kept.len(),
            g.candidate_nodes,
            g.node_influence_share,
            g.links.len(),
            g.edge_influence_share
        );
        for n in kept.iter().take(10) {
            println!(
                "    {:>8.4}  {}  (attribution {:.4}, activation {:.3})",
                n.influence, n.id, n.attribution, n.activation
            );
        }
    }
    if let Some(c) = &r.check {
        print_check(c);
    }
}

fn print_check(c: &Check) {
    println!("  check in the real forward pass (predicted -> measured change of the target):");
    println!(
        "    {:<40} {:>22} {:>22}",
        "node", "zero-ablated", "mean-ablated"
    );
    for n in &c.nodes {
        println!(
            "    {:<40} {:>9.4} -> {:>9.4} {:>9.4} -> {:>9.4}",
            n.id, n.predicted_zero, n.measured_zero, n.predicted_mean, n.measured_mean
        );
    }
    println!(
        "    Pearson r: zero {:.3}, mean {:.3}; circuit of {} nodes: faithfulness {:.3} \
         (m(C) {:.4}, m(0) {:.4}, m(M) {:.4})",
        c.pearson_zero,
        c.pearson_mean,
        c.circuit_nodes,
        c.faithfulness,
        c.m_circuit,
        c.m_empty,
        c.m_full
    );
}
