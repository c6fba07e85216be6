//! The report's figures as SVG: W^T W heat maps and b, ||W_i|| bars coloured by superposition,
//! neurons' feature counts and kurtosis, the phase diagram, D* against 1/(1 - S), the D_i
//! histogram.

use std::fmt::Write;

use crate::experiments::dims::{DimsResult, DIM_BIN};
use crate::experiments::intro::ModelResult;
use crate::experiments::phase::{PhaseCell, Region};
use crate::svg::{diverging, esc, fmt_num, sequential, svg_element, Plot, Scale};

/// One figure: its id (file name without `.svg`), caption and SVG markup.
pub struct Figure {
    /// Id, also the file name `plots/<id>.svg`.
    pub id: String,
    /// Caption shown under it.
    pub caption: String,
    /// The `<svg>` element.
    pub svg: String,
}

/// W^T W heat map (blue -1 .. red +1) and b per sparsity, side by side.
pub fn wtw_figure(m: &ModelResult) -> Figure {
    let n = m.instances.first().map_or(0, |i| i.b.len());
    let cell = (160.0 / n.max(1) as f64).clamp(2.0, 10.0);
    let panel = cell * (n as f64 + 2.0) + 16.0;
    let (w, h) = (
        panel * m.instances.len() as f64 + 10.0,
        cell * n as f64 + 40.0,
    );
    let mut body = String::new();
    for (p, inst) in m.instances.iter().enumerate() {
        let x0 = 10.0 + p as f64 * panel;
        let _ = write!(
            body,
            r#"<text x="{:.1}" y="14" font-size="11">S = {}</text>"#,
            x0,
            fmt_num(inst.sparsity)
        );
        for (i, row) in inst.wtw.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                let _ = write!(
                    body,
                    r#"<rect x="{:.1}" y="{:.1}" width="{cell:.1}" height="{cell:.1}" fill="{}"/>"#,
                    x0 + j as f64 * cell,
                    22.0 + i as f64 * cell,
                    diverging(*v)
                );
            }
        }
        let bx = x0 + (n as f64 + 0.7) * cell;
        for (i, v) in inst.b.iter().enumerate() {
            let _ = write!(
                body,
                r#"<rect x="{bx:.1}" y="{:.1}" width="{cell:.1}" height="{cell:.1}" fill="{}"><title>b_{i} = {v:.3}</title></rect>"#,
                22.0 + i as f64 * cell,
                diverging(*v as f64)
            );
        }
    }
    Figure {
        id: format!("intro-{}-wtw", m.kind.name()),
        caption: format!("{}: W^T W (blue -1, white 0, red +1) and b (right column) for each sparsity S; features ordered by importance.", m.kind.name()),
        svg: svg_element(&format!("intro-{}-wtw", m.kind.name()), w, h, &body),
    }
}

/// ||W_i|| per feature, one panel per sparsity, bars coloured by superposition (dark 0, yellow >= 1).
pub fn norms_figure(m: &ModelResult) -> Figure {
    let n = m.instances.first().map_or(0, |i| i.b.len());
    let bar = (150.0 / n.max(1) as f64).clamp(1.0, 8.0);
    let (ph, panel) = (120.0, bar * n as f64 + 30.0);
    let top = m
        .instances
        .iter()
        .flat_map(|i| i.geometry.norms.iter().copied())
        .fold(1.0f64, f64::max);
    let (w, h) = (panel * m.instances.len() as f64 + 10.0, ph + 40.0);
    let mut body = String::new();
    for (p, inst) in m.instances.iter().enumerate() {
        let x0 = 10.0 + p as f64 * panel;
        let _ = write!(
            body,
            r#"<text x="{x0:.1}" y="14" font-size="11">S = {} ({} repr.)</text>"#,
            fmt_num(inst.sparsity),
            inst.geometry.represented
        );
        let y1 = 22.0 + ph;
        let half = y1 - ph * 0.5 / top;
        let _ = write!(
            body,
            r##"<line x1="{x0:.1}" y1="{half:.1}" x2="{:.1}" y2="{half:.1}" stroke="#bbb" stroke-dasharray="2 2"/>"##,
            x0 + bar * n as f64
        );
        for (i, (v, sp)) in inst
            .geometry
            .norms
            .iter()
            .zip(&inst.geometry.superposition)
            .enumerate()
        {
            let hgt = ph * v / top;
            let _ = write!(
                body,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{hgt:.1}" fill="{}"><title>feature {i}: ||W_i|| {v:.3}, superposition {sp:.3}</title></rect>"#,
                x0 + i as f64 * bar,
                y1 - hgt,
                (bar - 1.0).max(0.5),
                sequential(*sp)
            );
        }
    }
    Figure {
        id: format!("intro-{}-norms", m.kind.name()),
        caption: format!("{}: ||W_i|| per feature (most important first) for each S; colour = superposition sum_(j != i) (W_i_hat . W_j)^2 (dark: none, yellow: >= 1); dashed line: the representation threshold 0.5.", m.kind.name()),
        svg: svg_element(&format!("intro-{}-norms", m.kind.name()), w, h, &body),
    }
}

/// Hidden-ReLU model: mean features per neuron against 1/(1 - S), and feature count against kurtosis.
pub fn neuron_figures(m: &ModelResult) -> Vec<Figure> {
    let pts: Vec<(f64, f64)> = m
        .instances
        .iter()
        .filter_map(|i| Some((1.0 / (1.0 - i.sparsity), i.mean_features_per_neuron?)))
        .collect();
    let xmax = pts.iter().map(|p| p.0).fold(10.0, f64::max);
    let ymax = pts.iter().map(|p| p.1).fold(1.0, f64::max).ceil() + 1.0;
    let mut a = Plot::new(
        420.0,
        260.0,
        Scale::Log(1.0, xmax),
        Scale::Linear(0.0, ymax),
        "features per neuron",
        "1/(1-S)",
        "mean features per neuron",
    );
    a.line(&pts, "#c0392b");
    for (x, y) in &pts {
        a.dot(
            *x,
            *y,
            3.5,
            "#c0392b",
            &format!("1/(1-S) = {}: {y:.2}", fmt_num(*x)),
        );
    }
    let units: Vec<(f64, f64, f64)> = m
        .instances
        .iter()
        .flat_map(|i| {
            i.neurons
                .iter()
                .flatten()
                .filter_map(move |u| Some((u.features as f64, u.kurtosis?, i.sparsity)))
        })
        .collect();
    let kmax = units.iter().map(|u| u.1).fold(10.0, f64::max);
    let cmax = units.iter().map(|u| u.0).fold(1.0, f64::max) + 1.0;
    let mut b = Plot::new(
        420.0,
        260.0,
        Scale::Linear(0.0, cmax),
        Scale::Log(1.0, kmax * 1.5),
        "neurons: feature count vs kurtosis",
        "features driving the neuron",
        "activation kurtosis",
    );
    for (c, k, sp) in &units {
        let t = (1.0 / (1.0 - sp)).log10() / 3.0;
        b.dot(
            *c,
            *k,
            3.5,
            &sequential(t),
            &format!("S = {sp}: {c} features, kurtosis {k:.1}"),
        );
    }
    vec![
        Figure { id: "neurons-features".into(), caption: "Hidden-ReLU model: mean number of features driving a neuron (response to the feature alone above half the neuron's largest) against 1/(1-S).".into(), svg: a.finish("neurons-features") },
        Figure { id: "neurons-kurtosis".into(), caption: "Hidden-ReLU model: each neuron's feature count against the kurtosis of its activation over sampled inputs (colour: sparsity, dark dense to yellow sparse).".into(), svg: b.finish("neurons-kurtosis") },
    ]
}

fn region_colour(r: Region) -> &'static str {
    match r {
        Region::NotRepresented => "#3a6fb0",
        Region::Dedicated => "#f0f0f0",
        Region::Superposition => "#d0413c",
        Region::Other => "#999999",
    }
}

/// The phase diagram: one rectangle per cell, density (log) across, importance (log) up.
pub fn phase_figure(cells: &[PhaseCell]) -> Figure {
    let mut ds: Vec<f64> = cells.iter().map(|c| c.density).collect();
    let mut rs: Vec<f64> = cells.iter().map(|c| c.relative_importance).collect();
    ds.sort_by(f64::total_cmp);
    ds.dedup();
    rs.sort_by(f64::total_cmp);
    rs.dedup();
    let half = |v: &[f64]| {
        if v.len() > 1 {
            (v[v.len() - 1] / v[0]).powf(0.5 / (v.len() - 1) as f64)
        } else {
            1.5
        }
    };
    let (hd, hr) = (half(&ds), half(&rs));
    let (dlo, dhi) = (
        ds.first().copied().unwrap_or(0.01) / hd,
        ds.last().copied().unwrap_or(1.0) * hd,
    );
    let (rlo, rhi) = (
        rs.first().copied().unwrap_or(0.1) / hr,
        rs.last().copied().unwrap_or(10.0) * hr,
    );
    let mut p = Plot::new(
        460.0,
        380.0,
        Scale::Log(dlo, dhi),
        Scale::Log(rlo, rhi),
        "n = 2, m = 1 phase diagram",
        "feature density 1 - S",
        "relative importance of feature 2",
    );
    for c in cells {
        let t = format!(
            "density {}, importance {}: {:?}, W = [{:.2}, {:.2}]",
            fmt_num(c.density),
            fmt_num(c.relative_importance),
            c.region,
            c.w[0],
            c.w[1]
        );
        p.rect(
            c.density / hd,
            c.relative_importance / hr,
            c.density * hd,
            c.relative_importance * hr,
            region_colour(c.region),
            &t,
        );
    }
    let mut legend = String::new();
    for (i, (r, name)) in [
        (Region::NotRepresented, "feature 2 not represented"),
        (Region::Dedicated, "feature 2 dedicated"),
        (Region::Superposition, "antipodal superposition"),
        (Region::Other, "other"),
    ]
    .iter()
    .enumerate()
    {
        let y = 40.0 + 14.0 * i as f64;
        let _ = write!(
            legend,
            r##"<rect x="470" y="{y}" width="10" height="10" fill="{}" stroke="#555"/><text x="484" y="{}" font-size="10">{}</text>"##,
            region_colour(*r),
            y + 9.0,
            esc(name)
        );
    }
    p.raw(&legend);
    Figure {
        id: "phase".into(),
        caption: "Phase diagram of n = 2 features in m = 1 dimension (ReLU-output model): blue, feature 2 not represented; white, feature 2 takes the dimension; red, both as an antipodal pair (W_1 = -W_2). Hover a cell for W.".into(),
        svg: p.finish_wider("phase", 170.0),
    }
}

/// D* against 1/(1 - S) with every represented feature's D_i as a dot, and the plateau histogram.
pub fn dims_figures(d: &DimsResult) -> Vec<Figure> {
    let xmax = d
        .levels
        .iter()
        .map(|l| l.inverse_density)
        .fold(10.0, f64::max);
    let mut a = Plot::new(
        560.0,
        320.0,
        Scale::Log(1.0, xmax),
        Scale::Linear(0.0, 1.1),
        "dimensions per feature",
        "1/(1-S)",
        "D* = m / ||W||_F^2, and D_i",
    );
    for (v, l) in [
        (1.0, "1"),
        (0.75, "3/4"),
        (2.0 / 3.0, "2/3"),
        (0.5, "1/2"),
        (0.4, "2/5"),
        (0.375, "3/8"),
    ] {
        a.hline(v, l);
    }
    for l in &d.levels {
        for di in &l.dimensionality {
            a.dot(
                l.inverse_density,
                *di,
                1.5,
                "#7f8c8d",
                &format!("D_i = {di:.3}"),
            );
        }
    }
    let pts: Vec<(f64, f64)> = d
        .levels
        .iter()
        .map(|l| (l.inverse_density, l.d_star))
        .collect();
    a.line(&pts, "#111");
    for (i, (x, y)) in pts.iter().enumerate() {
        let c = if d.plateau.contains(&i) {
            "#d0413c"
        } else {
            "#111"
        };
        a.dot(
            *x,
            *y,
            3.0,
            c,
            &format!("1/(1-S) = {}: D* = {y:.3}", fmt_num(*x)),
        );
    }
    let b = histogram_plot(
        &d.plateau_histogram,
        "D_i of represented features on the plateau",
        "dims-hist",
    );
    let c = histogram_plot(
        &d.histogram,
        "D_i of represented features at every sparsity",
        "dims-hist-all",
    );
    vec![
        Figure { id: "dims-dstar".into(), caption: "n = 200, m = 20, equal importance: D* against 1/(1-S) (black line; red points: the plateau within 0.05 of 1/2) and each represented feature's D_i (grey dots), with the paper's fractions.".into(), svg: a.finish("dims-dstar") },
        Figure { id: "dims-hist".into(), caption: "Histogram of D_i over the represented features of the plateau's sparsity levels (bins of 1/40 centred on its multiples).".into(), svg: b },
        Figure { id: "dims-hist-all".into(), caption: "Histogram of D_i over the represented features of every sparsity level: clusters at the paper's fractions (1, 3/4, 2/3, 1/2, 2/5, 3/8) and, at higher sparsity, below them, with many features in between.".into(), svg: c },
    ]
}

/// A D_i histogram (bins of [`DIM_BIN`] centred on its multiples) with the paper's fractions.
fn histogram_plot(hist: &[usize], title: &str, id: &str) -> String {
    let top = hist.iter().copied().max().unwrap_or(1).max(1) as f64;
    let mut b = Plot::new(
        560.0,
        260.0,
        Scale::Linear(0.0, 1.05),
        Scale::Linear(0.0, top * 1.1),
        title,
        "D_i",
        "features",
    );
    for (v, l) in [
        (1.0, "1"),
        (0.75, "3/4"),
        (2.0 / 3.0, "2/3"),
        (0.5, "1/2"),
        (0.4, "2/5"),
        (0.375, "3/8"),
    ] {
        b.vline(v, l);
    }
    for (k, c) in hist.iter().enumerate() {
        let x = k as f64 * DIM_BIN;
        b.rect(
            x - DIM_BIN * 0.45,
            0.0,
            x + DIM_BIN * 0.45,
            *c as f64,
            "#2c7fb8",
            &format!("D_i near {}: {c}", fmt_num(x)),
        );
    }
    b.finish(id)
}
