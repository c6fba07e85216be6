//! `sae export --neuronpedia`: every latent of a report becomes a feature of a Neuronpedia /
//! SAEDashboard batch file, with the report's own numbers (read back from report.json here):
//! top and quantile-band windows as token strings and values (3 decimals), the histogram, the
//! firing fraction.

mod report_common;

use report_common::*;

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[test]
fn export_writes_every_latent_as_a_neuronpedia_feature() {
    let f = fixture();
    let out = f.dir.path().join("report");
    let r = report(&f, &out, &["--top", "4"]);
    let np = f.dir.path().join("np");
    let o = sae(&[
        "export",
        "--neuronpedia",
        "--report",
        s(&out),
        "--out",
        s(&np),
        "--batch-size",
        "2",
        "--model-id",
        "tiny",
        "--sae-set",
        "res-test",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let units = r["groups"][0]["units"].as_array().unwrap();
    let vocab = r["vocab"].as_object().unwrap();
    let word = |t: &serde_json::Value| vocab[&t.as_u64().unwrap().to_string()].clone();
    let mut seen = 0;
    for i in 0..units.len().div_ceil(2) {
        let text = std::fs::read_to_string(np.join(format!("batch-{i}.json"))).unwrap();
        let batch: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (batch["model_id"].as_str(), batch["sae_set"].as_str()),
            (Some("tiny"), Some("res-test"))
        );
        for feat in batch["features"].as_array().unwrap() {
            let u = &units[seen];
            assert_eq!(feat["feature_index"], u["id"]);
            assert_eq!(feat["frac_nonzero"], u["density"]);
            let heights: Vec<f64> = u["histogram"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["count"].as_f64().unwrap())
                .collect();
            let got: Vec<f64> = feat["freq_hist_data_bar_heights"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(got, heights);
            let top = u["top"].as_array().unwrap();
            let bands: usize = u["quantiles"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["contexts"].as_array().unwrap().len())
                .sum();
            let acts = feat["activations"].as_array().unwrap();
            assert_eq!(acts.len(), top.len() + bands, "latent {seen}");
            for (a, c) in acts.iter().zip(top) {
                assert_eq!(a["bin_min"], -1.0);
                let tokens: Vec<serde_json::Value> =
                    c["tokens"].as_array().unwrap().iter().map(word).collect();
                assert_eq!(a["tokens"].as_array().unwrap(), &tokens);
                let want: Vec<f64> = c["acts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| round3(v.as_f64().unwrap()))
                    .collect();
                let values: Vec<f64> = a["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect();
                assert_eq!(values, want);
            }
            assert!(
                feat["pos_str"].as_array().unwrap().is_empty(),
                "no model, no logit lens"
            );
            seen += 1;
        }
    }
    assert_eq!(seen, units.len());
    assert!(!np
        .join(format!("batch-{}.json", units.len().div_ceil(2)))
        .exists());
    // Latent 0 detects " cat": its strongest window is centred on it.
    let first: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(np.join("batch-0.json")).unwrap()).unwrap();
    let a = &first["features"][0]["activations"][0];
    let c = units[0]["top"][0]["center"].as_u64().unwrap() as usize;
    assert_eq!(a["tokens"][c], " cat");
}

#[test]
fn report_reads_one_hook_of_a_folder_of_several() {
    let f = fixture();
    // sparsify's layout: one SAE per hookpoint subfolder.
    let parent = f.dir.path().join("saes");
    for hook in ["layers.0", "layers.1"] {
        let dst = parent.join(hook);
        std::fs::create_dir_all(&dst).unwrap();
        for file in ["cfg.json", "sae_weights.safetensors"] {
            std::fs::copy(f.sae.join(file), dst.join(file)).unwrap();
        }
    }
    let out = f.dir.path().join("report");
    let base = [
        "report",
        "--sae",
        s(&parent),
        "--store",
        s(&f.store),
        "--tokenizer",
        s(&f.tokenizer),
        "--out",
        s(&out),
    ];
    let o = sae(&base);
    let msg = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && msg.contains("--hook") && msg.contains("layers.0, layers.1"),
        "{msg}"
    );
    let mut with_hook = base.to_vec();
    with_hook.extend(["--hook", "layers.1"]);
    let o = sae(&with_hook);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert!(
        r["sae"]["path"].as_str().unwrap().ends_with("layers.1"),
        "{}",
        r["sae"]["path"]
    );
}
