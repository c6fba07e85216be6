//! The dashboard's files against the report they come from: the inlined index holds each unit's
//! summary fields, the chunk scripts together hold every unit exactly as `report.json` does (with
//! its logit tokens and the text of every token it shows), and a rerun leaves one chunk folder.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::chunks::{chunk_file, CHUNK_CALLBACK, CHUNK_DIR_PREFIX, CHUNK_UNITS};
use crate::histogram::density_histogram;
use crate::schema::{
    ActiveRule, GroupReport, LogitEffects, Report, ReportSettings, SaeInfo, UnitKind,
    REPORT_FORMAT, REPORT_VERSION,
};
use crate::summary::summarize;
use crate::tests_synthetic::{analyze_with, data};
use crate::{write_dashboard, AnalysisSettings, UnitStats};

/// A latents group of `n` units (the synthetic detectors repeated, ids renumbered) with logits.
fn report(n: usize) -> Report {
    let d = data();
    let base = analyze_with(&d, 64, 6, AnalysisSettings::default());
    let units: Vec<UnitStats> = (0..n)
        .map(|i| {
            let mut u = base[i % base.len()].clone();
            u.id = i;
            u.explanation_text = Some(format!("unit {i} <b>&"));
            u
        })
        .collect();
    let logits = (0..n as u32)
        .map(|i| LogitEffects {
            promoted: vec![(100 + i, 2.5)],
            suppressed: vec![(5000 + i, -1.0)],
        })
        .collect();
    let densities: Vec<f64> = units.iter().map(|u| u.density).collect();
    let mut vocab: BTreeMap<u32, String> = (0..20).map(|t| (t, format!("</script>{t}"))).collect();
    vocab.extend((0..n as u32).map(|i| (100 + i, format!("up{i}"))));
    let g = GroupReport {
        kind: UnitKind::Latents,
        label: "SAE latents".into(),
        store: "store".into(),
        hook: None,
        rows: d.tokens.len() as u64,
        active_rule: ActiveRule::Positive,
        summary: summarize(&units, 0.5, 10, 0),
        density_histogram: density_histogram(&densities),
        units,
        logits: Some(logits),
    };
    Report {
        format: REPORT_FORMAT.into(),
        version: REPORT_VERSION,
        sae: SaeInfo {
            path: "sae".into(),
            d_in: 6,
            d_sae: n,
            architecture: "standard".into(),
            model_name: None,
            hook_name: None,
            d_out: None,
            hook_name_out: None,
        },
        settings: ReportSettings::default(),
        groups: vec![g],
        comparisons: vec![],
        vocab,
        training: None,
        spliced_eval: None,
        heldout_eval: None,
        target: None,
        notes: vec![],
    }
}

/// The JSON inlined in `index.html`.
fn page_data(dir: &Path) -> Value {
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    let start = html.find("id=\"report-data\">").unwrap() + "id=\"report-data\">".len();
    let end = start + html[start..].find("</script>").unwrap();
    serde_json::from_str(&html[start..end]).unwrap()
}

/// The argument of a chunk script's callback.
fn chunk_data(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        !text.contains('<') && !text.contains('>'),
        "unescaped markup"
    );
    let json = text
        .strip_prefix(&format!("{CHUNK_CALLBACK}("))
        .and_then(|t| t.strip_suffix(");\n"))
        .expect("one callback call");
    serde_json::from_str(json).unwrap()
}

fn chunk_dirs(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(CHUNK_DIR_PREFIX))
        .collect();
    v.sort();
    v
}

#[test]
fn chunks_hold_every_unit_as_report_json_does() {
    let n = 2 * CHUNK_UNITS + 5;
    let r = report(n);
    let dir = tempfile::tempdir().unwrap();
    write_dashboard(dir.path(), &r).unwrap();
    let page = page_data(dir.path());
    // As report.json holds it (f32 fields written in their shortest form).
    let full: Value = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    let units = full["groups"][0]["units"].as_array().unwrap();
    // The index: one array per field, by id; no unit's contexts and no vocabulary.
    let g = &page["groups"][0];
    for (field, key) in [
        ("active", "active"),
        ("max", "max"),
        ("kurtosis", "kurtosis"),
        ("active_fit", "active_fit"),
        ("active_heldout", "active_heldout"),
        ("explanation_text", "explanation_text"),
    ] {
        let col: Vec<&Value> = units.iter().map(|u| &u[key]).collect();
        assert_eq!(
            g["index"][field]
                .as_array()
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            col
        );
    }
    let f1: Vec<Value> = units
        .iter()
        .map(|u| u["explanation"]["f1"].clone())
        .collect();
    assert_eq!(g["index"]["f1"].as_array().unwrap(), &f1);
    assert!(g.get("units").is_none() && page.get("vocab").is_none());
    assert_eq!(page["chunks"]["units"], CHUNK_UNITS);
    // The chunks: concatenated, the report's units and logits; each vocabulary exactly the tokens shown.
    let folder = dir.path().join(page["chunks"]["dir"].as_str().unwrap());
    let chunks = n.div_ceil(CHUNK_UNITS);
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), chunks);
    let (mut all, mut logits) = (vec![], vec![]);
    for c in 0..chunks {
        let v = chunk_data(&folder.join(chunk_file(UnitKind::Latents, c)));
        assert_eq!(v["group"], "latents");
        assert_eq!(v["start"], c * CHUNK_UNITS);
        let mut shown: Vec<u64> = vec![];
        for u in v["units"].as_array().unwrap() {
            for ctx in u["top"].as_array().unwrap().iter().chain(
                u["quantiles"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|q| q["contexts"].as_array().unwrap()),
            ) {
                shown.extend(
                    ctx["tokens"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|t| t.as_u64().unwrap()),
                );
            }
            all.push(u.clone());
        }
        for l in v["logits"].as_array().unwrap() {
            shown.push(l["promoted"][0][0].as_u64().unwrap());
            shown.push(l["suppressed"][0][0].as_u64().unwrap());
            logits.push(l.clone());
        }
        let expect: BTreeMap<String, Value> = shown
            .iter()
            .filter_map(|t| {
                full["vocab"]
                    .get(t.to_string())
                    .map(|s| (t.to_string(), s.clone()))
            })
            .collect();
        let got: BTreeMap<String, Value> = serde_json::from_value(v["vocab"].clone()).unwrap();
        assert_eq!(got, expect, "chunk {c}");
    }
    assert_eq!(&all, units);
    assert_eq!(&logits, full["groups"][0]["logits"].as_array().unwrap());
}

#[test]
fn a_rerun_leaves_only_its_own_chunks() {
    let dir = tempfile::tempdir().unwrap();
    write_dashboard(dir.path(), &report(10)).unwrap();
    let first = chunk_dirs(dir.path());
    write_dashboard(dir.path(), &report(10)).unwrap();
    assert_eq!(chunk_dirs(dir.path()), first, "same contents, same folder");
    write_dashboard(dir.path(), &report(300)).unwrap();
    let second = chunk_dirs(dir.path());
    assert_eq!(second.len(), 1);
    assert_ne!(second, first);
    assert_eq!(page_data(dir.path())["chunks"]["dir"], second[0].as_str());
}
