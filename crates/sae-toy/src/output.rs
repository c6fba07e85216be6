//! Writing a finished report: `toy.json`, one SVG per figure under `plots/`, and `index.html`
//! (self-contained: the figures are inlined, and also linked as files). Every file is atomic.

use std::fmt::Write;
use std::path::Path;

use crate::error::{io_err, Result, ToyError};
use crate::model::ModelKind;
use crate::plots::{dims_figures, neuron_figures, norms_figure, phase_figure, wtw_figure, Figure};
use crate::report::{ToyReport, REPORT_JSON};
use crate::svg::{esc, fmt_num};

/// File name of the page inside the output folder.
pub const PAGE_FILE: &str = "index.html";
/// Folder of the SVG files inside the output folder.
pub const PLOTS_DIR: &str = "plots";

const CSS: &str = "body{font-family:sans-serif;max-width:1400px;margin:1em auto;padding:0 1em;color:#222}\
figure{margin:1em 0;overflow-x:auto}figcaption{font-size:0.9em;color:#444;max-width:60em}\
table{border-collapse:collapse;font-size:0.9em}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}\
section{border-top:1px solid #ddd;margin-top:1.5em}code{background:#f4f4f4;padding:0 3px}";

/// The figures of `report`, in page order, grouped by section.
pub fn figures(report: &ToyReport) -> Vec<(&'static str, Figure)> {
    let mut out = Vec::new();
    if let Some(intro) = &report.intro {
        for m in &intro.models {
            out.push(("intro", wtw_figure(m)));
            out.push(("intro", norms_figure(m)));
            if m.kind == ModelKind::HiddenRelu {
                out.extend(neuron_figures(m).into_iter().map(|f| ("intro", f)));
            }
        }
    }
    if let Some(cells) = &report.phase {
        out.push(("phase", phase_figure(cells)));
    }
    if let Some(d) = &report.dimensionality {
        out.extend(dims_figures(d).into_iter().map(|f| ("dims", f)));
    }
    out
}

fn figure_html(s: &mut String, f: &Figure) {
    let _ = write!(
        s,
        r#"<figure id="fig-{id}">{svg}<figcaption>{cap} <a href="{PLOTS_DIR}/{id}.svg">{id}.svg</a></figcaption></figure>"#,
        id = esc(&f.id),
        svg = f.svg,
        cap = esc(&f.caption)
    );
}

fn intro_tables(s: &mut String, report: &ToyReport) {
    let Some(intro) = &report.intro else { return };
    s.push_str("<table id=\"represented\"><tr><th>model</th>");
    if let Some(m) = intro.models.first() {
        for i in &m.instances {
            let _ = write!(s, "<th>S = {}</th>", fmt_num(i.sparsity));
        }
    }
    s.push_str("</tr>");
    for m in &intro.models {
        let _ = write!(s, "<tr><td>{} represented</td>", m.kind.name());
        for i in &m.instances {
            let _ = write!(s, "<td>{}</td>", i.geometry.represented);
        }
        s.push_str("</tr>");
        if m.kind == ModelKind::HiddenRelu {
            s.push_str("<tr><td>features per neuron</td>");
            for i in &m.instances {
                let _ = write!(
                    s,
                    "<td>{}</td>",
                    i.mean_features_per_neuron
                        .map_or("-".into(), |v| format!("{v:.2}"))
                );
            }
            s.push_str("</tr>");
        }
    }
    s.push_str("</table>");
    for m in intro
        .models
        .iter()
        .filter(|m| m.kind == ModelKind::HiddenRelu)
    {
        if let Some(ck) = &m.count_kurtosis {
            let o = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3}"));
            let _ = write!(s, "<p id=\"count-kurtosis\">Neurons' feature count against activation kurtosis, pooled over sparsities ({} neurons): Pearson {}, Spearman {}.</p>", ck.units, o(ck.pearson), o(ck.spearman));
        }
    }
    if intro.sae.is_empty() {
        return;
    }
    s.push_str("<h3>Our SAE on the hidden layer</h3><table id=\"sae\"><tr><th>model</th><th>S</th><th>represented</th><th>mmcs</th><th>recovered_frac</th><th>fvu</th><th>l0</th><th>features per latent</th><th>features per neuron</th></tr>");
    for p in &intro.sae {
        let o = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
        let _ = write!(s, "<tr class=\"sae-row\"><td>{}</td><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.3}</td><td>{:.3}</td><td>{:.2}</td><td>{}</td><td>{}</td></tr>", p.kind.name(), fmt_num(p.sparsity), p.represented.len(), p.mmcs, p.recovered_frac, p.fvu, p.l0, o(p.latent_features), o(p.neuron_features));
    }
    s.push_str("</table>");
}

/// The self-contained page.
pub fn page(report: &ToyReport) -> String {
    let figs = figures(report);
    let mut s = String::new();
    let _ = write!(s, "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Toy models of superposition</title><style>{CSS}</style></head><body>");
    s.push_str("<h1>Toy models of superposition</h1><p>Elhage et al. (2022) reproduced with <code>sae toy</code>: features x_i are 0 with probability S, else U[0,1); importance I_i; the ReLU-output model x' = ReLU(W^T W x + b), the linear model x' = W^T W x + b and the hidden-ReLU model h = ReLU(W x). A feature is represented when ||W_i|| &gt; 0.5.</p>");
    let t = &report.config.train;
    let _ = write!(
        s,
        "<p>AdamW lr {}, weight decay {}, batch {}, {} steps, seed {}; {:.1} s.</p>",
        t.lr, t.weight_decay, t.batch, t.steps, t.seed, report.seconds
    );
    let sections = [
        (
            "intro",
            "Superposition as sparsity grows (n = 20, m = 5, I_i = 0.7^i)",
        ),
        ("phase", "Phase diagram (n = 2, m = 1)"),
        (
            "dims",
            "Feature dimensionality (n = 200, m = 20, equal importance)",
        ),
    ];
    for (key, title) in sections {
        if !figs.iter().any(|(k, _)| *k == key) {
            continue;
        }
        let _ = write!(s, "<section id=\"{key}\"><h2>{}</h2>", esc(title));
        if key == "intro" {
            intro_tables(&mut s, report);
        }
        if key == "dims" {
            if let Some(d) = &report.dimensionality {
                let plat: Vec<String> = d
                    .plateau
                    .iter()
                    .map(|&i| fmt_num(d.levels[i].inverse_density))
                    .collect();
                let _ = write!(s, "<p id=\"plateau\">Plateau (|D* - 1/2| &lt;= 0.05) at 1/(1-S) = {}; most populated D_i bin there: {}.</p>", esc(&plat.join(", ")), d.plateau_mode.map_or("-".into(), fmt_num));
            }
        }
        for (_, f) in figs.iter().filter(|(k, _)| *k == key) {
            figure_html(&mut s, f);
        }
        s.push_str("</section>");
    }
    s.push_str("<script>document.body.setAttribute('data-plots', String(document.querySelectorAll('svg.plot').length));</script></body></html>");
    s
}

/// Writes `toy.json`, `plots/*.svg` and `index.html` into `dir`, creating it.
pub fn write_outputs(dir: &Path, report: &ToyReport) -> Result<()> {
    let plots = dir.join(PLOTS_DIR);
    std::fs::create_dir_all(&plots).map_err(io_err(&plots))?;
    let json = serde_json::to_vec_pretty(report).map_err(|e| ToyError::Invalid(e.to_string()))?;
    sae_store::atomic_write(&dir.join(REPORT_JSON), &json)?;
    for (_, f) in figures(report) {
        sae_store::atomic_write(&plots.join(format!("{}.svg", f.id)), f.svg.as_bytes())?;
    }
    sae_store::atomic_write(&dir.join(PAGE_FILE), page(report).as_bytes())?;
    Ok(())
}
