//! `sae report --control untrained --control random`: the control groups join the report,
//! analysed like the others, with held-out medians, bootstrap intervals and latents-minus-group
//! differences; the untrained SAE is exactly the SAE its training run started from.

mod report_common;

use report_common::*;

/// `sae train` on the fixture's store: TopK k 2, 12 latents, seed 0.
fn train(f: &Fixture, out: &std::path::Path, steps: &str, lr: &str) {
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
        steps,
        "--batch",
        "64",
        "--lr",
        lr,
    ]);
    assert!(
        o.status.success(),
        "sae train: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn report_on(
    f: &Fixture,
    sae_dir: &std::path::Path,
    out: &std::path::Path,
    extra: &[&str],
) -> serde_json::Value {
    let mut args = vec![
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
    ];
    args.extend_from_slice(extra);
    let o = sae(&args);
    assert!(
        o.status.success(),
        "sae report: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

fn actives(g: &serde_json::Value) -> Vec<u64> {
    g["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["active"].as_u64().unwrap())
        .collect()
}

#[test]
fn controls_join_the_report_and_the_untrained_sae_is_the_initialisation() {
    let f = fixture();
    let trained = f.dir.path().join("trained");
    train(&f, &trained, "60", "0.002");
    let controls = ["--control", "untrained", "--control", "random"];
    let r = report_on(&f, &trained, &f.dir.path().join("r"), &controls);
    let kinds: Vec<&str> = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["latents", "basis", "untrained", "random"]);
    let d = r["groups"][1]["units"].as_array().unwrap().len();
    assert_eq!(r["groups"][2]["units"].as_array().unwrap().len(), 12);
    assert_eq!(
        r["groups"][3]["units"].as_array().unwrap().len(),
        d,
        "one random direction per dimension"
    );
    assert_eq!(r["groups"][3]["active_rule"]["rule"], "fraction_of_max");
    // Every group: a held-out median inside its bootstrap interval.
    for g in r["groups"].as_array().unwrap() {
        let sm = &g["summary"];
        if let Some(m) = sm["median_f1"].as_f64() {
            let (lo, hi) = (
                sm["median_f1_ci"]["lo"].as_f64().unwrap(),
                sm["median_f1_ci"]["hi"].as_f64().unwrap(),
            );
            assert!(
                lo <= m + 1e-12 && m <= hi + 1e-12,
                "{}: {m} not in [{lo}, {hi}]",
                g["kind"]
            );
        }
    }
    // Latents minus each other group, with an interval around the difference.
    let cmp = r["comparisons"].as_array().unwrap();
    assert_eq!(cmp.len(), 3);
    for c in cmp {
        let dif = c["difference"].as_f64().unwrap();
        let (lo, hi) = (
            c["interval"]["lo"].as_f64().unwrap(),
            c["interval"]["hi"].as_f64().unwrap(),
        );
        assert!(lo <= dif + 1e-12 && dif <= hi + 1e-12, "{c}");
    }
    // Seeded, and independent of the thread count: the same report again on one thread.
    let mut one = controls.to_vec();
    one.extend(["--threads", "1"]);
    let again = report_on(&f, &trained, &f.dir.path().join("r2"), &one);
    assert_eq!(again["groups"], r["groups"]);
    assert_eq!(again["comparisons"], r["comparisons"]);
    // The untrained group is the SAE the run started from: an SAE "trained" one step at a
    // learning rate too small to move an f32 weight has the same units, row for row.
    let start = f.dir.path().join("start");
    train(&f, &start, "1", "1e-30");
    let s0 = report_on(&f, &start, &f.dir.path().join("s0"), &[]);
    assert_eq!(actives(&r["groups"][2]), actives(&s0["groups"][0]));
    assert_eq!(
        r["groups"][2]["units"][3]["explanation"],
        s0["groups"][0]["units"][3]["explanation"]
    );
    assert_ne!(
        actives(&r["groups"][2]),
        actives(&r["groups"][0]),
        "training changed the latents"
    );
    // The dashboard and the card know the new groups.
    let html = std::fs::read_to_string(f.dir.path().join("r").join("index.html")).unwrap();
    assert!(html.contains("\"kind\":\"untrained\"") && html.contains("\"kind\":\"random\""));
    let o = sae(&[
        "inspect",
        "--report",
        s(&f.dir.path().join("r")),
        "--group",
        "random",
        "--unit",
        "0",
    ]);
    assert!(o.status.success());
    let card = String::from_utf8_lossy(&o.stdout);
    assert!(card.starts_with("Random direction #0"), "{card}");
}

#[test]
fn the_untrained_control_needs_the_training_config() {
    // The fixture's SAE was written by hand: no train_config.toml.
    let f = fixture();
    let o = sae(&[
        "report",
        "--sae",
        s(&f.sae),
        "--store",
        s(&f.store),
        "--tokenizer",
        s(&f.tokenizer),
        "--out",
        s(&f.dir.path().join("r")),
        "--control",
        "untrained",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("train_config.toml") && err.lines().count() == 1,
        "{err}"
    );
    assert!(!f.dir.path().join("r").join("report.json").exists());
}
