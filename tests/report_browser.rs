//! The dashboard in a real browser (Debian's chromium, headless): the latents table and a latent's
//! contexts render, and corpus text holding `<script>` / `<img onerror>` shows as text and never runs.
//! `scripts/browser-test.sh` installs chromium when missing and runs this test.

mod browser;
mod report_common;

use std::path::Path;

use browser::dump_dom;
use report_common::*;

fn url(path: &Path, hash: &str) -> String {
    format!("file://{}{hash}", path.canonicalize().unwrap().display())
}

/// The page changed itself the way the payload would: title or an injected element.
fn payload_ran(dom: &str) -> bool {
    dom.contains("<title>pwned</title>") || dom.contains("<pwned")
}

#[test]
fn payload_detector_works_on_an_unsafe_page() {
    // Control: a page that inserts the same corpus text as HTML must trip the detector,
    // so that the real test below cannot pass by accident.
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("unsafe.html");
    let js_string = serde_json::to_string(IMG).unwrap();
    let html = format!(
        "<!DOCTYPE html><html><head><title>t</title></head><body><div id=x></div>\
         <script>document.getElementById('x').innerHTML = {js_string};</script></body></html>"
    );
    std::fs::write(&page, html).unwrap();
    let dom = dump_dom(&url(&page, ""));
    assert!(
        payload_ran(&dom),
        "the control page should have run the payload:\n{dom}"
    );
}

#[test]
fn dashboard_renders_and_escapes_corpus_text() {
    let f = fixture();
    let out = f.dir.path().join("out");
    report(&f, &out, &["--top", "5"]);
    let index = out.join("index.html");
    for (latent, needle) in [
        (3, "&lt;script&gt;alert(1)&lt;/script&gt;"),
        (4, "&lt;img src=x onerror="),
    ] {
        let dom = dump_dom(&url(&index, &format!("#latents/{latent}")));
        assert!(
            dom.contains("data-rendered=\"true\""),
            "page script did not finish:\n{dom}"
        );
        assert!(!payload_ran(&dom), "corpus text ran as HTML:\n{dom}");
        assert!(
            !dom.contains("<img src=x") && !dom.contains("<script>alert"),
            "raw corpus HTML in the DOM"
        );
        assert!(dom.contains("<title>SAE report</title>"));
        // The latents table: one row per latent.
        assert!(dom.contains("id=\"units-table\""), "no units table");
        assert_eq!(
            dom.matches("class=\"unit-row").count(),
            D_SAE,
            "latents table rows"
        );
        // The latent's panel and its contexts, the payload visible as text inside them.
        let title = format!("SAE latents ({D_SAE}) #{latent}");
        assert!(dom.contains(&title), "panel title {title:?} missing");
        let ctx = dom
            .split("id=\"top-contexts\"")
            .nth(1)
            .expect("top contexts rendered");
        assert!(
            ctx.matches("class=\"ctx\"").count() >= 5,
            "five top contexts expected"
        );
        assert!(
            ctx.contains(needle),
            "escaped corpus text {needle:?} not shown in the contexts"
        );
        // The comparison table and plots.
        assert!(dom.contains("id=\"comparison\"") && dom.contains("<svg"));
    }
}

/// The `data-id`s of the units table's rows, in order.
fn row_ids(dom: &str) -> Vec<usize> {
    dom.split("class=\"unit-row")
        .skip(1)
        .map(|r| {
            let v = r.split("data-id=\"").nth(1).unwrap();
            v[..v.find('"').unwrap()].parse().unwrap()
        })
        .collect()
}

#[test]
fn dashboard_sorts_and_searches() {
    let f = fixture();
    let out = f.dir.path().join("out");
    report(&f, &out, &["--top", "3"]);
    let index = out.join("index.html");
    let page = |query: &str| dump_dom(&url(&index, query));
    // Search by explanation text: only the script-token latent mentions "script".
    assert_eq!(row_ids(&page("?q=script")), vec![3]);
    // Search by id.
    assert_eq!(row_ids(&page("?q=4")), vec![4]);
    // Sort by id ascending, by density ascending (the dead latent first), by F1 descending.
    assert_eq!(row_ids(&page("?sort=id&desc=0")), vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(row_ids(&page("?sort=density&desc=0"))[0], 5);
    let by_f1 = row_ids(&page("?sort=f1"));
    assert_eq!(
        *by_f1.last().unwrap(),
        5,
        "the dead latent (F1 0) sorts last"
    );
    // Units active on fewer than --min-active rows of a half sort below every scored unit, whatever their F1
    // (all detectors have F1 1 here, so a plain F1 sort would order them by id alone).
    let counts = f_report_counts(&f);
    let mut sorted = counts.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let min_active = sorted[1];
    let scored: std::collections::BTreeSet<usize> = (0..counts.len())
        .filter(|&i| counts[i] >= min_active)
        .collect();
    let strict = f.dir.path().join("strict");
    report(
        &f,
        &strict,
        &["--top", "3", "--min-active", &min_active.to_string()],
    );
    let strict_page = dump_dom(&url(&strict.join("index.html"), "?sort=f1"));
    let ids = row_ids(&strict_page);
    let first: std::collections::BTreeSet<usize> = ids[..scored.len()].iter().copied().collect();
    assert_eq!(
        first, scored,
        "scored units come first: {ids:?} (counts {counts:?})"
    );
    assert!(strict_page.contains("(rare)"), "rare units are marked");
    // Another group.
    let basis = row_ids(&page("?group=basis&sort=id&desc=0"));
    assert_eq!(basis, (0..24).collect::<Vec<_>>());
}

/// Active rows of each latent of the fixture's SAE in the half where it fires less (a unit is
/// scored when both halves reach --min-active), from a default report.
fn f_report_counts(f: &Fixture) -> Vec<u64> {
    let out = f.dir.path().join("counts");
    let r = report(f, &out, &["--top", "1"]);
    r["groups"][0]["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            let half = |k: &str| u[k].as_u64().unwrap();
            half("active_fit").min(half("active_heldout"))
        })
        .collect()
}

/// Script added to a copy of the dashboard: records the laid-out size of every curve plot and the
/// drawn length of every path in it, so the DOM dump shows whether the SVG really rendered.
const MEASURE: &str = r#"<script>
for (const svg of document.querySelectorAll("svg.curve")) {
  const r = svg.getBoundingClientRect();
  svg.setAttribute("data-laid-out", Math.round(r.width) + "x" + Math.round(r.height));
  for (const p of svg.querySelectorAll("path[data-series]")) {
    const b = p.getBBox();
    p.setAttribute("data-drawn", Math.round(p.getTotalLength()) + " " + Math.round(b.width) + "x" + Math.round(b.height));
  }
}
document.body.setAttribute("data-measured", "true");
</script>"#;

#[test]
fn training_curves_and_spliced_figures_render() {
    let f = fixture();
    let log: String = (1..=50u64)
        .map(|i| {
            format!(
                "{{\"step\":{},\"loss\":{},\"recon\":{},\"fvu\":{},\"l0\":8.0,\"dead_frac\":{}}}\n",
                10 * i,
                5.0 / i as f64,
                4.0 / i as f64,
                1.0 / (1.0 + i as f64),
                i as f64 / 500.0
            )
        })
        .collect();
    std::fs::write(f.sae.join("metrics.jsonl"), log).unwrap();
    let eval = r#"{"ce_clean": 3.0, "ce_sae": 3.5, "ce_zero": 8.0, "ce_loss_recovered": 0.9}"#;
    std::fs::write(f.sae.join("eval_spliced.json"), eval).unwrap();
    let out = f.dir.path().join("out");
    report(&f, &out, &["--top", "2"]);
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    let page = out.join("measured.html");
    std::fs::write(
        &page,
        html.replacen("</body>", &format!("{MEASURE}</body>"), 1),
    )
    .unwrap();
    let dom = dump_dom(&url(&page, ""));
    assert!(dom.contains("data-rendered=\"true\"") && dom.contains("data-measured=\"true\""));
    // The page script puts the headline figure into the header.
    assert!(
        dom.contains("CE loss recovered 0.900"),
        "header lacks the spliced figure"
    );
    assert!(dom.contains("id=\"spliced-table\""));
    assert_eq!(
        dom.matches("data-laid-out=\"420x250\"").count(),
        4,
        "four plots laid out"
    );
    let drawn: Vec<&str> = dom
        .split("data-drawn=\"")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect();
    assert_eq!(drawn.len(), 5, "loss, recon, fvu, l0, dead_frac: {drawn:?}");
    for d in &drawn {
        let (len, bbox) = d.split_once(' ').unwrap();
        let w: f64 = bbox.split('x').next().unwrap().parse().unwrap();
        // Each line spans the x range of the plot area (step 10 to 500 of 0..500).
        assert!(len.parse::<f64>().unwrap() >= 300.0 && w >= 300.0, "{d}");
    }
}
