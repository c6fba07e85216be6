//! The dashboard's static sections, rendered here rather than by the page script: the spliced
//! evaluation (the SAE judged inside the model) and the training curves as inline SVG. Every text
//! that comes from a file (model and hook names, paths, notes) goes through [`esc`].

use std::fmt::Write;

use crate::curves::{CurveSeries, TrainingCurves, METRICS_FILE};
use crate::schema::Report;
use crate::spliced::{SplicedEval, SPLICED_EVAL_FILE};
use crate::svg::{esc, Axis, Line, LinePlot};

/// A plot of the training curves: title, y label, the metrics drawn (colour each), and whether
/// its y axis is log10 whenever every value is > 0 (else by [`wants_log`]).
struct CurvePlot {
    title: &'static str,
    ylabel: &'static str,
    metrics: &'static [(&'static str, &'static str)],
    log_if_positive: bool,
}

/// The four plots of the training section.
const PLOTS: [CurvePlot; 4] = [
    CurvePlot {
        title: "Loss",
        ylabel: "loss",
        metrics: &[("loss", "#d9480f"), ("recon", "#1971c2")],
        log_if_positive: true,
    },
    CurvePlot {
        title: "Fraction of variance unexplained",
        ylabel: "FVU",
        metrics: &[("fvu", "#5f3dc4")],
        log_if_positive: false,
    },
    CurvePlot {
        title: "Active latents per row",
        ylabel: "L0",
        metrics: &[("l0", "#2f9e44")],
        log_if_positive: false,
    },
    CurvePlot {
        title: "Dead latents",
        ylabel: "fraction dead",
        metrics: &[("dead_frac", "#c92a2a")],
        log_if_positive: false,
    },
];

/// A y axis is log10 when every value is > 0 and they span at least a factor of 10 (FVU and the
/// L0 of an L1-penalised run can fall by decades; a flat L0 or a dead fraction with zeros do not).
/// The loss plot is log10 whenever its values are > 0, as loss curves are usually read.
pub fn wants_log(min: f64, max: f64) -> bool {
    min > 0.0 && max / min >= 10.0
}

/// The plot of `series` (those present of one [`CurvePlot`]), or `None` when none is.
fn curve_plot<'a>(
    p: &'a CurvePlot,
    series: &[(&'a CurveSeries, &'a str)],
    points: &'a [Vec<(f64, f64)>],
) -> Option<LinePlot<'a>> {
    let first = series.first()?;
    let (mut xmin, mut xmax) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut ymin, mut ymax) = (first.0.min, first.0.max);
    for (s, _) in series {
        ymin = ymin.min(s.min);
        ymax = ymax.max(s.max);
        if let (Some(a), Some(b)) = (s.points.first(), s.points.last()) {
            xmin = xmin.min(a.0 as f64);
            xmax = xmax.max(b.0 as f64);
        }
    }
    let y = if wants_log(ymin, ymax) || (p.log_if_positive && ymin > 0.0) {
        Axis::log(ymin, ymax)
    } else {
        Axis::linear(ymin.min(0.0), ymax)
    };
    let lines = series
        .iter()
        .zip(points)
        .map(|((s, color), pts)| Line {
            name: &s.metric,
            color,
            points: pts,
        })
        .collect();
    Some(LinePlot {
        title: p.title,
        xlabel: "training step",
        ylabel: p.ylabel,
        x: Axis::linear(xmin.min(0.0), xmax),
        y,
        lines,
    })
}

/// The SVG plots of the training curves, in the order of [`PLOTS`] (a plot whose metrics were
/// not logged is left out).
pub fn curve_svgs(t: &TrainingCurves) -> Vec<String> {
    let mut out = Vec::new();
    for p in &PLOTS {
        let series: Vec<(&CurveSeries, &str)> = p
            .metrics
            .iter()
            .filter_map(|(m, c)| t.series(m).map(|s| (s, *c)))
            .collect();
        let points: Vec<Vec<(f64, f64)>> = series
            .iter()
            .map(|(s, _)| s.points.iter().map(|&(x, y)| (x as f64, y)).collect())
            .collect();
        if let Some(plot) = curve_plot(p, &series, &points) {
            out.push(plot.render());
        }
    }
    out
}

fn num(v: f64) -> String {
    if v != 0.0 && !(1e-3..1e5).contains(&v.abs()) {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

/// The training-curves section: plots and last values, or why there are none.
pub fn training_section(r: &Report) -> String {
    let mut s = String::from(r#"<section class="wide" id="training"><h2>Training curves</h2>"#);
    let Some(t) = &r.training else {
        let _ = write!(
            s,
            r#"<p class="muted" id="no-training">No {METRICS_FILE} in the SAE folder {}: it was not trained here (an SAE downloaded from SAELens has none), so there are no training curves.</p></section>"#,
            esc(&r.sae.path)
        );
        return s;
    };
    let rows = t.batch.map_or(String::new(), |b| {
        format!(" ({b} rows per step: {} rows in all)", b * t.last_step)
    });
    let _ = write!(
        s,
        r#"<p class="muted">{}: {} logged steps, {} to {}{rows}; each series keeps at most {} points (the first and last, and each bucket's minimum and maximum).</p><div class="plots" id="training-curves">"#,
        esc(&t.file),
        t.logged_steps,
        t.first_step,
        t.last_step,
        t.max_points
    );
    for svg in curve_svgs(t) {
        s.push_str(&svg);
    }
    s.push_str(r#"</div><table class="stats" id="training-last"><tr><th>metric</th><th class="num">last</th><th class="num">min</th><th class="num">max</th><th class="num">points</th></tr>"#);
    for c in &t.series {
        let _ = write!(
            s,
            r#"<tr><td>{} ({})</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
            esc(&c.label),
            esc(&c.metric),
            num(c.last),
            num(c.min),
            num(c.max),
            c.points_total
        );
    }
    s.push_str("</table>");
    if let Some(c) = &t.config {
        let _ = write!(
            s,
            r#"<details><summary>train_config.toml</summary><pre id="train-config">{}</pre></details>"#,
            esc(c)
        );
    }
    s.push_str("</section>");
    s
}

/// The spliced-evaluation section: the figures with their meaning, or how to get them.
pub fn spliced_section(r: &Report) -> String {
    // Beside the held-out section when there is one, else across the page.
    let class = if r.heldout_eval.is_some() { "" } else { "wide" };
    let mut s = format!(
        r#"<section class="{class}" id="spliced-eval"><h2>Inside the model: the SAE spliced in</h2>"#
    );
    let Some(e) = &r.spliced_eval else {
        let _ = write!(
            s,
            r#"<p class="muted" id="no-spliced-eval">No {SPLICED_EVAL_FILE} in the SAE folder: <code>sae eval --model M --sae {} --corpus FILE</code> measures the next-token loss with the SAE in the model.</p>"#,
            esc(&r.sae.path)
        );
        s.push_str("</section>");
        return s;
    };
    s.push_str(&spliced_meta(e));
    s.push_str(r#"<table id="spliced-table"><tr><th>figure</th><th class="num">value</th><th>meaning</th></tr>"#);
    for f in e.figures() {
        let v = f.value.map_or("-".into(), |v| format!("{v:.4}"));
        let _ = write!(
            s,
            r#"<tr data-figure="{}"><td>{}</td><td class="num">{v}</td><td class="muted">{}</td></tr>"#,
            f.name,
            f.name,
            esc(f.meaning)
        );
    }
    s.push_str("</table></section>");
    s
}

fn spliced_meta(e: &SplicedEval) -> String {
    let unknown = || "?".to_string();
    // A transcoder reads `hook` and its output replaces `hook_out`.
    let hook = match e.extra.get("hook_out").and_then(|v| v.as_str()) {
        Some(out) => format!("{} -> {out}", e.hook.as_deref().unwrap_or("?")),
        None => e.hook.clone().unwrap_or_else(unknown),
    };
    format!(
        r#"<p class="muted">model {} · hook {} · {} tokens. CE is the mean next-token cross-entropy (nats); special-token positions keep their activation and are left out of every mean.</p>"#,
        esc(e.model.as_deref().unwrap_or("?")),
        esc(&hook),
        e.tokens.map_or_else(unknown, |t| t.to_string())
    )
}

/// A transcoder's line: "transcoder: IN -> OUT", where the report's parts read from; empty for
/// an autoencoder.
pub fn transcoder_section(r: &Report) -> String {
    let Some(line) = r.sae.transcoder_line() else {
        return String::new();
    };
    let out = r.sae.hook_name_out.as_deref().unwrap_or("the output hook");
    format!(
        r#"<section class="wide" id="transcoder"><p><strong id="transcoder-line">{}</strong> (d_in {}, d_out {}). Contexts, explanations and scores read the input store; the decoder rows, and so the logit lens, live in the space of {}; reconstruction figures compare the output with the target store's rows.</p></section>"#,
        esc(&line),
        r.sae.d_in,
        r.sae.d_out.unwrap_or(0),
        esc(out)
    )
}

/// Where the reconstruction figures come from, in words.
fn heldout_source(r: &Report) -> String {
    match (&r.target, r.sae.transcoder_line()) {
        (Some(t), Some(line)) => format!(
            r#"<p class="muted" id="heldout-target">{}: the output compared with the target store {} ({}), on the {} held-out rows, as <code>sae eval --target-store</code> computes it.</p>"#,
            esc(&line),
            esc(&t.store),
            esc(t.hook.as_deref().unwrap_or("?")),
            t.eval_rows
        ),
        (None, Some(line)) => format!(
            r#"<p class="muted" id="heldout-target">{}: from the SAE folder's eval.json (computed by <code>sae eval --target-store</code>), not recomputed here.</p>"#,
            esc(&line)
        ),
        _ => String::new(),
    }
}

/// The held-out reconstruction section (from eval.json, or for a transcoder computed against its
/// target store), empty when there are no figures.
pub fn heldout_section(r: &Report) -> String {
    let Some(m) = &r.heldout_eval else {
        return String::new();
    };
    // A transcoder's output y_hat is compared with the target rows y, an SAE's with its input x.
    let (fvu, l2) = match r.sae.is_transcoder() {
        true => (
            "fraction of variance unexplained: ||y - y_hat||^2 / ||y - mean||^2 over the target rows y (0 = perfect)",
            "mean ||y_hat|| / ||y|| (1 = no shrinkage)",
        ),
        false => (
            "fraction of variance unexplained: ||x - x_hat||^2 / ||x - mean||^2 (0 = perfect)",
            "mean ||x_hat|| / ||x|| (1 = no shrinkage)",
        ),
    };
    let rows = [
        ("fvu", Some(m.fvu), fvu),
        ("l0", Some(m.l0), "active latents per row"),
        (
            "dead_frac",
            Some(m.dead_frac),
            "fraction of latents that never fire on these rows",
        ),
        (
            "dense_frac",
            Some(m.dense_frac),
            "fraction of latents firing on more than 10% of the rows",
        ),
        ("l2_ratio", Some(m.l2_ratio), l2),
        ("mse", Some(m.mse), "mean squared error per element"),
        (
            "mmcs",
            m.mmcs,
            "mean over true features of the best decoder cosine (ground truth)",
        ),
        (
            "recovered_frac",
            m.recovered_frac,
            "true features with a decoder cosine > 0.9 (ground truth)",
        ),
    ];
    let mut s =
        String::from(r#"<section id="heldout-eval"><h2>Reconstruction on held-out rows</h2>"#);
    s.push_str(&heldout_source(r));
    s.push_str(r#"<table id="heldout-table"><tr><th>figure</th><th class="num">value</th><th>meaning</th></tr>"#);
    for (name, value, meaning) in rows {
        if let Some(v) = value {
            let _ = write!(
                s,
                r#"<tr data-figure="{name}"><td>{name}</td><td class="num">{}</td><td class="muted">{meaning}</td></tr>"#,
                num(v)
            );
        }
    }
    s.push_str("</table></section>");
    s
}

/// The report's notes (side files left out or inconsistent), one paragraph each; empty when none.
pub fn notes_block(r: &Report) -> String {
    if r.notes.is_empty() {
        return String::new();
    }
    let mut s = String::from(r#"<section class="wide" id="notes">"#);
    for n in &r.notes {
        let _ = write!(s, r#"<p class="note">note: {}</p>"#, esc(n));
    }
    s.push_str("</section>");
    s
}
