//! The `sae toy` page in a real browser (Debian's chromium, headless): it renders from file://,
//! every figure is present as an inline SVG element the browser parsed, and the tables show.
//! `scripts/install-chromium.sh` installs chromium when missing (`scripts/setup.sh` runs it).

mod browser;
mod common;

use browser::dump_dom;
use common::{ok, s, sae};

/// A small run of all three experiments (few steps: this checks the page, not the physics).
const SMALL: &str = r#"
[train]
steps = 200
batch = 256
[intro]
sparsities = [0.0, 0.9, 0.99]
kurtosis_samples = 2000
[phase]
densities = [1.0, 0.1, 0.01]
importances = [0.3, 3.0]
replicates = 1
eval_samples = 1000
[dimensionality]
features = 40
hidden = 8
inverse_densities = [1.0, 3.0, 10.0]
[sae]
min_sparsity = 0.99
models = ["relu-output"]
rows = 5000
steps = 100
batch = 256
"#;

#[test]
fn toy_page_renders_every_plot() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("small.toml");
    std::fs::write(&cfg, SMALL).unwrap();
    let out = tmp.path().join("out");
    ok(sae(&[
        "toy",
        "--out",
        s(&out),
        "--config",
        s(&cfg),
        "--quiet",
    ]));
    let mut ids: Vec<String> = std::fs::read_dir(out.join("plots"))
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".svg").unwrap().to_string()
        })
        .collect();
    ids.sort();
    // W^T W and norms for 3 models, 2 neuron plots, the phase diagram, D* and two histograms.
    assert_eq!(ids.len(), 12, "{ids:?}");
    let page = out.join("index.html").canonicalize().unwrap();
    let dom = dump_dom(&format!("file://{}", page.display()));
    assert!(dom.contains("<title>Toy models of superposition</title>"));
    // The page's script counted the <svg class="plot"> elements the browser built.
    assert!(
        dom.contains(&format!("data-plots=\"{}\"", ids.len())),
        "inline SVGs not parsed: {}",
        &dom[..dom.len().min(400)]
    );
    for id in &ids {
        assert!(dom.contains(&format!("id=\"{id}\"")), "plot {id} missing");
        assert!(
            dom.contains(&format!("href=\"plots/{id}.svg\"")),
            "link to {id}.svg missing"
        );
    }
    for table in [
        "id=\"represented\"",
        "id=\"sae\"",
        "class=\"sae-row\"",
        "id=\"plateau\"",
    ] {
        assert!(dom.contains(table), "{table} missing");
    }
    // The standalone SVG files are what the page inlines.
    let svg = std::fs::read_to_string(out.join("plots/phase.svg")).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(std::fs::read_to_string(out.join("index.html"))
        .unwrap()
        .contains(&svg));
}
