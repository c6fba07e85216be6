//! Tests of the SVG plots and the dashboard's static sections: a path per series with the right
//! number of points, axis domains covering the data, pixels that map back to the data, escaping.

use crate::curves::{curves_from_log, parse_metrics, TrainingCurves};
use crate::schema::{Report, ReportSettings, SaeInfo, TargetInfo, REPORT_FORMAT, REPORT_VERSION};
use crate::sections::{
    curve_svgs, heldout_section, spliced_section, training_section, transcoder_section,
};
use crate::spliced::SplicedEval;
use crate::svg::Axis;

/// A run of 3000 steps logged every 10: loss falls by two decades, L0 is flat, dead grows.
fn curves(max_points: usize) -> TrainingCurves {
    let text: String = (1..=300u64)
        .map(|i| {
            let step = 10 * i;
            let loss = 50.0 / step as f64 + 0.01 * (i % 7) as f64;
            format!(
                "{{\"step\":{step},\"loss\":{loss},\"recon\":{},\"fvu\":{},\"l0\":32.0,\"dead_frac\":{}}}\n",
                0.8 * loss,
                1.0 / (1.0 + i as f64 / 30.0),
                (i - 1) as f64 / 3000.0
            )
        })
        .collect();
    curves_from_log(
        &parse_metrics(text.as_bytes()).unwrap(),
        "run/metrics.jsonl",
        max_points,
    )
}

fn attr(tag: &str, name: &str) -> String {
    let key = format!(" {name}=\"");
    let at = tag
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {tag}"))
        + key.len();
    tag[at..at + tag[at..].find('"').unwrap()].to_string()
}

fn attr_f(tag: &str, name: &str) -> f64 {
    attr(tag, name).parse().unwrap()
}

/// (series name, data points read back from the path's pixels) of every path in `svg`.
fn read_back(svg: &str) -> Vec<(String, Vec<(f64, f64)>)> {
    let root = &svg[..svg.find('>').unwrap()];
    let (xlo, xhi, ylo, yhi) = (
        attr_f(root, "data-x-lo"),
        attr_f(root, "data-x-hi"),
        attr_f(root, "data-y-lo"),
        attr_f(root, "data-y-hi"),
    );
    let log = attr(root, "data-y-scale") == "log";
    let area: Vec<f64> = attr(root, "data-area")
        .split(' ')
        .map(|v| v.parse().unwrap())
        .collect();
    let mut out = Vec::new();
    for p in svg.split("<path").skip(1) {
        let tag = &p[..p.find("/>").unwrap()];
        let d = attr(tag, "d");
        let pts: Vec<(f64, f64)> = d
            .split(['M', 'L'])
            .filter(|s| !s.trim().is_empty())
            .map(|xy| {
                let (px, py) = xy.trim().split_once(',').unwrap();
                let u = (px.parse::<f64>().unwrap() - area[0]) / area[2];
                let v = (area[1] + area[3] - py.parse::<f64>().unwrap()) / area[3];
                let y = if log {
                    10f64.powf(ylo.log10() + v * (yhi.log10() - ylo.log10()))
                } else {
                    ylo + v * (yhi - ylo)
                };
                (xlo + u * (xhi - xlo), y)
            })
            .collect();
        assert_eq!(
            attr(tag, "data-points").parse::<usize>().unwrap(),
            pts.len()
        );
        out.push((attr(tag, "data-series"), pts));
    }
    out
}

#[test]
fn each_series_is_a_path_that_maps_back_to_its_points() {
    let c = curves(120);
    let svgs = curve_svgs(&c);
    assert_eq!(svgs.len(), 4, "loss, fvu, l0, dead");
    let expect: [&[&str]; 4] = [&["loss", "recon"], &["fvu"], &["l0"], &["dead_frac"]];
    for (svg, names) in svgs.iter().zip(expect) {
        let root = &svg[..svg.find('>').unwrap()];
        let paths = read_back(svg);
        assert_eq!(
            paths.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
            names
        );
        for (name, pts) in paths {
            let s = c.series(&name).unwrap();
            assert_eq!(pts.len(), s.points.len(), "{name}");
            assert!(s.points.len() <= 120 && s.points_total == 300);
            for (got, want) in pts.iter().zip(&s.points) {
                assert!(
                    (got.0 - want.0 as f64).abs() < 0.05 * 3000.0 / 344.0,
                    "{name} x {got:?} {want:?}"
                );
                assert!(
                    (got.1 - want.1).abs() <= 1e-3 * want.1.abs().max(0.01),
                    "{name} y {got:?} {want:?}"
                );
            }
            // The axis domains cover the data, and not much more.
            let (xlo, xhi) = (attr_f(root, "data-x-lo"), attr_f(root, "data-x-hi"));
            assert!(
                xlo <= 10.0 && (3000.0..=3500.0).contains(&xhi),
                "{name}: x {xlo}..{xhi}"
            );
            let (ylo, yhi) = (attr_f(root, "data-y-lo"), attr_f(root, "data-y-hi"));
            assert!(
                ylo <= s.min && yhi >= s.max,
                "{name}: y {ylo}..{yhi} vs {}..{}",
                s.min,
                s.max
            );
        }
        assert!(svg.matches("<text").count() >= 6, "ticks and labels");
    }
    // Loss spans two decades: log scale; the flat L0 and the dead fraction from 0: linear.
    let scale = |i: usize| attr(&svgs[i][..svgs[i].find('>').unwrap()], "data-y-scale");
    assert_eq!(
        (scale(0), scale(2), scale(3)),
        ("log".into(), "linear".into(), "linear".into())
    );
}

#[test]
fn axes_have_round_ticks_covering_the_range() {
    let a = Axis::linear(0.0, 2000.0);
    let labels: Vec<&str> = a.ticks.iter().map(|t| t.1.as_str()).collect();
    assert_eq!(labels, ["0", "500", "1000", "1500", "2000"]);
    let a = Axis::linear(0.0, 123_456.0);
    assert_eq!((a.lo, a.hi), (0.0, 125_000.0));
    assert_eq!(a.ticks[1].1, "25k");
    let a = Axis::linear(0.013, 0.087);
    assert!(a.lo <= 0.013 && a.hi >= 0.087 && a.ticks.len() >= 4);
    assert_eq!(
        (a.ticks[0].1.as_str(), a.ticks[1].1.as_str()),
        ("0", "0.02")
    );
    let a = Axis::linear(0.0, 0.0);
    assert_eq!((a.lo, a.hi), (0.0, 1.0));
    let a = Axis::log(0.02, 30.0);
    assert!(a.lo < 0.02 && a.hi > 30.0);
    let labels: Vec<&str> = a.ticks.iter().map(|t| t.1.as_str()).collect();
    assert_eq!(
        labels,
        ["0.02", "0.05", "0.1", "0.2", "0.5", "1", "2", "5", "10", "20"]
    );
    let a = Axis::log(0.23, 0.76);
    let labels: Vec<&str> = a.ticks.iter().map(|t| t.1.as_str()).collect();
    assert_eq!(labels, ["0.3", "0.4", "0.5", "0.6", "0.7"]);
    let a = Axis::log(1e-6, 1.0);
    let labels: Vec<&str> = a.ticks.iter().map(|t| t.1.as_str()).collect();
    assert_eq!(labels, ["1e-6", "1e-5", "1e-4", "1e-3", "0.01", "0.1", "1"]);
}

fn report(path: &str, training: Option<TrainingCurves>, eval: Option<SplicedEval>) -> Report {
    Report {
        format: REPORT_FORMAT.into(),
        version: REPORT_VERSION,
        sae: SaeInfo {
            path: path.into(),
            d_in: 4,
            d_sae: 8,
            architecture: "topk".into(),
            model_name: None,
            hook_name: Some("blocks.3.hook_resid_post".into()),
            d_out: None,
            hook_name_out: None,
        },
        settings: ReportSettings::default(),
        comparisons: vec![],
        groups: vec![],
        vocab: Default::default(),
        training,
        spliced_eval: eval,
        heldout_eval: None,
        target: None,
        notes: vec![],
    }
}

#[test]
fn sections_say_what_is_missing_and_escape_file_text() {
    let r = report("<script>x</script>", None, None);
    let t = training_section(&r);
    assert!(t.contains("id=\"no-training\"") && !t.contains("<svg"));
    assert!(t.contains("&lt;script&gt;x&lt;/script&gt;") && !t.contains("<script>"));
    let e = spliced_section(&r);
    assert!(e.contains("id=\"no-spliced-eval\"") && !e.contains("<script>"));

    let eval = SplicedEval {
        model: Some("<b>m</b>".into()),
        ce_clean: Some(3.0),
        ce_sae: Some(3.25),
        ce_zero: Some(8.0),
        ce_loss_recovered: Some(0.95),
        ..Default::default()
    };
    let r = report("sae", Some(curves(50)), Some(eval));
    let t = training_section(&r);
    assert_eq!(t.matches("<svg").count(), 4);
    assert!(t.contains("300 logged steps, 10 to 3000"));
    let e = spliced_section(&r);
    assert!(e.contains("&lt;b&gt;m&lt;/b&gt;") && !e.contains("<b>"));
    assert!(e.contains(
        "data-figure=\"ce_loss_recovered\"><td>ce_loss_recovered</td><td class=\"num\">0.9500</td>"
    ));
    assert!(e.contains("data-figure=\"kl_sae\"><td>kl_sae</td><td class=\"num\">-</td>"));
    assert!(e.contains("(CE_zero - CE_sae) / (CE_zero - CE_clean)"));
}

#[test]
fn a_single_logged_step_is_drawn_as_a_dot() {
    let log =
        parse_metrics(&b"{\"step\":5,\"loss\":0.5,\"fvu\":0.2,\"l0\":3.0,\"dead_frac\":0.0}\n"[..])
            .unwrap();
    let svgs = curve_svgs(&curves_from_log(&log, "m", 10));
    assert_eq!(svgs.len(), 4);
    for svg in &svgs {
        let paths = read_back(svg);
        assert_eq!(paths.len(), 1);
        assert_eq!(paths[0].1.len(), 1);
        assert_eq!(svg.matches("<circle").count(), 1);
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }
}

#[test]
fn a_report_json_without_the_new_sections_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = serde_json::to_value(report("sae", Some(curves(10)), None)).unwrap();
    for key in ["training", "spliced_eval", "notes"] {
        v.as_object_mut().unwrap().remove(key);
    }
    std::fs::write(dir.path().join("report.json"), v.to_string()).unwrap();
    let r = Report::read(dir.path()).unwrap();
    assert!(r.training.is_none() && r.spliced_eval.is_none() && r.notes.is_empty());
}

#[test]
fn heldout_figures_show_when_present() {
    let mut r = report("sae", None, None);
    assert_eq!(heldout_section(&r), "");
    r.heldout_eval = Some(sae_model::EvalMetrics {
        mse: 0.5,
        fvu: 0.125,
        l0: 16.0,
        dead_frac: 0.25,
        dense_frac: 0.0,
        l2_ratio: 0.875,
        mmcs: None,
        recovered_frac: Some(1.0),
    });
    let h = heldout_section(&r);
    assert!(
        h.contains(r#"data-figure="fvu"><td>fvu</td><td class="num">0.1250</td>"#),
        "{h}"
    );
    assert!(
        h.contains(r#"data-figure="dense_frac"><td>dense_frac</td><td class="num">0.0000</td>"#)
    );
    assert!(h.contains(r#"data-figure="recovered_frac""#) && !h.contains(r#"data-figure="mmcs""#));
}

#[test]
fn a_transcoder_is_named_with_both_hooks_and_its_figures_with_the_target() {
    let mut r = report("sae", None, None);
    assert_eq!(transcoder_section(&r), "", "an SAE has no transcoder line");
    r.sae.d_out = Some(6);
    r.sae.hook_name = Some("blocks.3.ln2.hook_normalized".into());
    r.sae.hook_name_out = Some("<i>out</i>".into());
    let t = transcoder_section(&r);
    assert!(t.contains(
        "transcoder: blocks.3.ln2.hook_normalized -&gt; &lt;i&gt;out&lt;/i&gt;</strong> (d_in 4, d_out 6)"
    ));
    assert!(!t.contains("<i>"));
    // Spliced from its input hook to its output hook (eval_spliced.json's hook and hook_out).
    let mut spliced = SplicedEval {
        hook: r.sae.hook_name.clone(),
        ..Default::default()
    };
    spliced.extra.insert(
        "hook_out".into(),
        serde_json::json!("blocks.3.hook_mlp_out"),
    );
    r.spliced_eval = Some(spliced);
    let e = spliced_section(&r);
    assert!(
        e.contains("hook blocks.3.ln2.hook_normalized -&gt; blocks.3.hook_mlp_out"),
        "{e}"
    );
    r.spliced_eval = None;
    r.heldout_eval = Some(sae_model::EvalMetrics {
        mse: 0.5,
        fvu: 0.25,
        l0: 3.0,
        dead_frac: 0.0,
        dense_frac: 0.0,
        l2_ratio: 0.9,
        mmcs: None,
        recovered_frac: None,
    });
    r.target = Some(TargetInfo {
        store: "acts/<out>".into(),
        hook: Some("blocks.3.hook_mlp_out".into()),
        eval_rows: 77,
    });
    let h = heldout_section(&r);
    assert!(
        h.contains("id=\"heldout-target\"") && h.contains("acts/&lt;out&gt;"),
        "{h}"
    );
    assert!(
        h.contains("on the 77 held-out rows") && h.contains("||y - y_hat||^2"),
        "{h}"
    );
}
