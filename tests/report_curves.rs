//! `sae report` on an SAE that `sae train` just trained: its metrics.jsonl becomes training curves
//! in report.json and SVG plots in the dashboard; a hand-written eval_spliced.json becomes the
//! spliced-evaluation figures; damaged side files become notes, never a failed report.

mod report_common;

use report_common::*;

/// Trains a small TopK SAE on the fixture's store (30 steps, logged every 10 by default) into `out`.
fn train(f: &Fixture, out: &std::path::Path) {
    let o = sae(&[
        "train",
        "--store",
        s(&f.store),
        "--out",
        s(out),
        "--arch",
        "topk",
        "--k",
        "2",
        "--d-sae",
        "12",
        "--steps",
        "30",
        "--batch",
        "64",
    ]);
    assert!(
        o.status.success(),
        "sae train: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn report_of(
    f: &Fixture,
    sae_dir: &std::path::Path,
    out: &std::path::Path,
) -> (serde_json::Value, String) {
    let o = sae(&[
        "report",
        "--sae",
        s(sae_dir),
        "--store",
        s(&f.store),
        "--tokenizer",
        s(&f.tokenizer),
        "--out",
        s(out),
        "--top",
        "2",
    ]);
    assert!(
        o.status.success(),
        "sae report: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    (r, String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn a_trained_sae_shows_its_training_curves() {
    let f = fixture();
    let trained = f.dir.path().join("trained");
    train(&f, &trained);
    let metrics = std::fs::read_to_string(trained.join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "steps 10, 20, 30");
    let out = f.dir.path().join("report");
    let (r, stderr) = report_of(&f, &trained, &out);
    assert!(!stderr.contains("note:"), "{stderr}");
    let t = &r["training"];
    assert_eq!(
        (t["logged_steps"].as_u64(), t["last_step"].as_u64()),
        (Some(3), Some(30))
    );
    for (metric, series) in [("loss", 0), ("fvu", 3), ("l0", 4), ("dead_frac", 5)] {
        let se = &t["series"][series];
        assert_eq!(se["metric"], metric);
        let pts = se["points"].as_array().unwrap();
        assert_eq!(pts.len(), 3, "{metric}");
        for (p, line) in pts.iter().zip(&lines) {
            assert_eq!(p[0], line["step"], "{metric}");
            assert!(
                (p[1].as_f64().unwrap() - line[metric].as_f64().unwrap()).abs() < 1e-9,
                "{metric}"
            );
        }
    }
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    let section = html
        .split("id=\"training\"")
        .nth(1)
        .expect("training section");
    let section = &section[..section.find("</section>").unwrap()];
    assert_eq!(section.matches("<svg").count(), 4, "loss, fvu, l0, dead");
    for series in ["loss", "recon", "fvu", "l0", "dead_frac"] {
        assert!(
            section.contains(&format!("data-series=\"{series}\" data-points=\"3\"")),
            "{series}"
        );
    }
    assert!(
        html.contains("id=\"no-spliced-eval\""),
        "no eval_spliced.json: says how to get one"
    );
    // The run's train_config.toml: rows per step and the recipe itself.
    assert_eq!(t["batch"], 64);
    assert!(html.contains("64 rows per step: 1920 rows in all"));
    assert!(html.contains("id=\"train-config\""));
    assert!(t["config"].as_str().unwrap().contains("batch = 64"));
}

const EVAL: &str = r#"{"model": "org/model-a", "hook": "blocks.3.hook_resid_post", "tokens": 12345,
  "ce_clean": 3.25, "ce_sae": 3.5, "ce_zero": 8.25, "ce_loss_recovered": 0.95, "delta_lm_loss": 0.25,
  "kl_sae": 0.125, "kl_zero": 5.0, "kl_div_score": 0.975}"#;

#[test]
fn spliced_figures_and_damaged_side_files() {
    let f = fixture();
    // The fixture's hand-made SAE has no metrics.jsonl: give it a log cut off by a kill, and an eval.
    std::fs::write(
        f.sae.join("metrics.jsonl"),
        "{\"step\":10,\"loss\":2.0,\"fvu\":0.5,\"l0\":4.0,\"dead_frac\":0.0}\n{\"step\":20,\"loss\":1.0,\"fvu\":0.25,\"l0\":3.0,\"dead_frac\":0.1}\n{\"step\":30,\"lo",
    )
    .unwrap();
    std::fs::write(f.sae.join("eval_spliced.json"), EVAL).unwrap();
    // As `sae run` writes it: the held-out reconstruction (`sae eval --json`).
    let heldout = r#"{"mse": 0.5, "fvu": 0.125, "l0": 16.0, "dead_frac": 0.25, "dense_frac": 0.0, "l2_ratio": 0.875}"#;
    std::fs::write(f.sae.join("eval.json"), heldout).unwrap();
    let out = f.dir.path().join("report");
    let (r, stderr) = report_of(&f, &f.sae, &out);
    let e = &r["spliced_eval"];
    assert_eq!(
        (e["ce_loss_recovered"].as_f64(), e["tokens"].as_u64()),
        (Some(0.95), Some(12345))
    );
    assert_eq!(
        (e["kl_div_score"].as_f64(), e["hook"].as_str()),
        (Some(0.975), Some("blocks.3.hook_resid_post"))
    );
    assert_eq!(r["training"]["logged_steps"], 2);
    assert_eq!(r["training"]["truncated_last_line"], true);
    assert!(
        stderr.contains("note:") && stderr.contains("incomplete"),
        "{stderr}"
    );
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    for (figure, value) in [
        ("ce_loss_recovered", "0.9500"),
        ("delta_lm_loss", "0.2500"),
        ("kl_div_score", "0.9750"),
        ("ce_zero", "8.2500"),
    ] {
        let row =
            format!("data-figure=\"{figure}\"><td>{figure}</td><td class=\"num\">{value}</td>");
        assert!(html.contains(&row), "{row}");
    }
    assert!(html.contains("(CE_zero - CE_sae) / (CE_zero - CE_clean)"));
    assert_eq!(r["heldout_eval"]["fvu"], 0.125);
    assert!(html.contains(r#"data-figure="fvu"><td>fvu</td><td class="num">0.1250</td>"#));
    assert!(
        html.contains("class=\"note\""),
        "the truncated line is noted on the page"
    );

    // A damaged eval file and an inconsistent one: the report still succeeds, with a note each.
    std::fs::write(f.sae.join("eval_spliced.json"), "{\"ce_clean\": 3.").unwrap();
    let (r, stderr) = report_of(&f, &f.sae, &f.dir.path().join("r2"));
    assert!(r["spliced_eval"].is_null());
    assert!(
        stderr.contains("spliced evaluation left out") && stderr.contains("eval_spliced.json"),
        "{stderr}"
    );
    std::fs::write(f.sae.join("eval_spliced.json"), EVAL.replace("0.95", "0.5")).unwrap();
    let (r, stderr) = report_of(&f, &f.sae, &f.dir.path().join("r3"));
    assert_eq!(r["spliced_eval"]["ce_loss_recovered"], 0.5);
    assert!(
        stderr.contains("ce_loss_recovered is 0.5 but its inputs give 0.95"),
        "{stderr}"
    );
}
