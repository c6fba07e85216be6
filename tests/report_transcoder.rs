//! `sae report` of a transcoder, end to end on the tiny GPT-2 fixture (given a word-level
//! tokenizer here): one harvest of `blocks.1.ln2.hook_normalized` (input), `blocks.1.hook_mlp_out`
//! (target) and `blocks.1.mlp.hook_post` (the layer's neurons), a short `sae train
//! --target-store`, then the report. Checked against independent computations: the logit lens of
//! each latent equals its decoder row W_dec_j (read from the saved weights) times the final
//! LayerNorm weight times the unembedding (read from the model's safetensors); the report's fvu
//! equals `sae eval --target-store`'s; report.json and index.html name both hooks.

mod browser;
mod common;

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use common::{ok, one_line_error, s, sae};

const IN: &str = "blocks.1.ln2.hook_normalized";
const OUT: &str = "blocks.1.hook_mlp_out";
const POST: &str = "blocks.1.mlp.hook_post";
/// Another hook of the model's width, for the mismatch check.
const OTHER: &str = "blocks.0.hook_mlp_out";
const D_SAE: usize = 48;

struct Fixture {
    dir: tempfile::TempDir,
    model: PathBuf,
    harvest: PathBuf,
    tc: PathBuf,
}

impl Fixture {
    fn store(&self, hook: &str) -> PathBuf {
        self.harvest.join(hook)
    }
}

/// The tiny GPT-2 fixture copied with a word-level tokenizer: words w0..w59, [UNK] = 60.
fn gpt2_with_tokenizer(dir: &Path) {
    let src = common::repo().join("tests/fixtures/parity/gpt2");
    std::fs::create_dir_all(dir).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let vocab: serde_json::Map<String, serde_json::Value> = (0..60)
        .map(|i| (format!("w{i}"), serde_json::json!(i)))
        .chain([("[UNK]".to_string(), serde_json::json!(60))])
        .collect();
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
}

/// 60 documents of 50 words w0..w59 (a fixed LCG), one .txt file each.
fn corpus(dir: &Path) -> PathBuf {
    let c = dir.join("corpus");
    std::fs::create_dir_all(&c).unwrap();
    let mut state = 7u64;
    for d in 0..60 {
        let words: Vec<String> = (0..50)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                format!("w{}", (state >> 33) % 60)
            })
            .collect();
        std::fs::write(c.join(format!("d{d:02}.txt")), words.join(" ")).unwrap();
    }
    c
}

/// Harvest the four hooks, train a BatchTopK transcoder IN -> OUT (saved as jumprelu_transcoder).
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("gpt2");
    gpt2_with_tokenizer(&model);
    let corpus = corpus(dir.path());
    let harvest = dir.path().join("acts");
    ok(sae(&[
        "harvest",
        "--model",
        s(&model),
        "--hook",
        IN,
        "--hook",
        OUT,
        "--hook",
        POST,
        "--hook",
        OTHER,
        "--corpus",
        s(&corpus),
        "--out",
        s(&harvest),
        "--ctx-len",
        "32",
        "--no-bos",
        "--eval-frac",
        "0.2",
        "--shard-rows",
        "1024",
    ]));
    let tc = dir.path().join("tc");
    let (x, y) = (harvest.join(IN), harvest.join(OUT));
    ok(sae(&[
        "train",
        "--store",
        s(&x),
        "--target-store",
        s(&y),
        "--out",
        s(&tc),
        "--arch",
        "batchtopk",
        "--k",
        "4",
        "--d-sae",
        "48",
        "--steps",
        "150",
        "--batch",
        "128",
        "--lr",
        "4e-3",
    ]));
    Fixture {
        dir,
        model,
        harvest,
        tc,
    }
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A tensor of a safetensors file as (values, shape).
fn tensor(file: &Path, name: &str) -> (Vec<f32>, Vec<usize>) {
    let map = candle_core::safetensors::load(file, &Device::Cpu).unwrap();
    let t: &Tensor = map
        .get(name)
        .unwrap_or_else(|| panic!("{name} not in {}", file.display()));
    let shape = t.dims().to_vec();
    (t.flatten_all().unwrap().to_vec1::<f32>().unwrap(), shape)
}

/// The lens by hand: logits[j][t] = sum_i W_dec[j, i] * ln_f.weight[i] * wte[t, i] (GPT-2 ties
/// the unembedding to the token embedding), from the two weight files.
fn lens_by_hand(tc: &Path, model: &Path) -> Vec<Vec<f64>> {
    let (w_dec, ws) = tensor(&tc.join("sae_weights.safetensors"), "W_dec");
    let file = model.join("model.safetensors");
    let names: Vec<String> = candle_core::safetensors::load(&file, &Device::Cpu)
        .unwrap()
        .into_keys()
        .collect();
    let find = |suffix: &str| names.iter().find(|n| n.ends_with(suffix)).unwrap().clone();
    let (g, _) = tensor(&file, &find("ln_f.weight"));
    let (wte, es) = tensor(&file, &find("wte.weight"));
    let d = ws[1];
    assert_eq!((ws[0], d, es[1]), (D_SAE, 16, 16));
    (0..ws[0])
        .map(|j| {
            (0..es[0])
                .map(|t| {
                    (0..d)
                        .map(|i| w_dec[j * d + i] as f64 * g[i] as f64 * wte[t * d + i] as f64)
                        .sum()
                })
                .collect()
        })
        .collect()
}

/// Each listed (token, logit) is the token's logit by hand, and the list holds the k most extreme.
fn check_effects(list: &serde_json::Value, by_hand: &[f64], largest: bool, j: usize) {
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 10, "latent {j}");
    let mut sorted = by_hand.to_vec();
    sorted.sort_by(|a, b| {
        if largest {
            b.total_cmp(a)
        } else {
            a.total_cmp(b)
        }
    });
    for (k, pair) in list.iter().enumerate() {
        let (t, v) = (
            pair[0].as_u64().unwrap() as usize,
            pair[1].as_f64().unwrap(),
        );
        let tol = 1e-4 * by_hand[t].abs().max(1e-3);
        assert!(
            (by_hand[t] - v).abs() <= tol,
            "latent {j} token {t}: {v} vs {}",
            by_hand[t]
        );
        assert!(
            (sorted[k] - v).abs() <= tol,
            "latent {j} rank {k}: {v} vs {}",
            sorted[k]
        );
    }
}

fn report_args<'a>(f: &'a Fixture, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "report",
        "--sae",
        s(&f.tc),
        "--model",
        s(&f.model),
        "--out",
        s(out),
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn transcoder_report_names_both_hooks_lens_on_the_output_side_fvu_against_the_target() {
    let f = fixture();
    let out = f.dir.path().join("report");
    let (x, y, n) = (f.store(IN), f.store(OUT), f.store(POST));
    let extra = [
        "--store",
        s(&x),
        "--target-store",
        s(&y),
        "--neurons",
        s(&n),
        "--top",
        "3",
    ];
    let o = ok(sae(&report_args(&f, &out, &extra)));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let line = format!("transcoder: {IN} -> {OUT}");
    assert!(
        stdout.contains(&format!(
            "held-out reconstruction ({line}, against the target store"
        )),
        "{stdout}"
    );
    let r = json(&out.join("report.json"));
    assert_eq!(r["sae"]["hook_name"], IN);
    assert_eq!(r["sae"]["hook_name_out"], OUT);
    assert_eq!(
        (r["sae"]["d_in"].as_u64(), r["sae"]["d_out"].as_u64()),
        (Some(16), Some(16))
    );
    let kinds: Vec<&str> = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["latents", "basis", "neurons"]);
    let latents = &r["groups"][0];
    assert!(
        latents["label"].as_str().unwrap().contains(&line),
        "{}",
        latents["label"]
    );
    // Contexts and explanations come from the input store, as for an SAE.
    assert_eq!(latents["store"], s(&x));
    assert_eq!(latents["hook"], IN);
    assert!(latents["units"][0]["top"].as_array().is_some());
    // The neuron comparison: the MLP neurons of the transcoder's layer.
    assert_eq!(r["groups"][2]["hook"], POST);
    assert_eq!(r["groups"][2]["units"].as_array().unwrap().len(), 64);

    // The logit lens reads the decoder rows in hook_mlp_out's space.
    let by_hand = lens_by_hand(&f.tc, &f.model);
    let logits = latents["logits"]
        .as_array()
        .expect("a logit lens on hook_mlp_out");
    assert_eq!(logits.len(), D_SAE);
    for (j, e) in logits.iter().enumerate() {
        check_effects(&e["promoted"], &by_hand[j], true, j);
        check_effects(&e["suppressed"], &by_hand[j], false, j);
    }

    // fvu and the rest against the target, exactly as `sae eval --target-store` gives them.
    let ev = ok(sae(&[
        "eval",
        "--sae",
        s(&f.tc),
        "--store",
        s(&x),
        "--target-store",
        s(&y),
        "--json",
    ]));
    let ev: serde_json::Value = serde_json::from_slice(&ev.stdout).unwrap();
    let h = &r["heldout_eval"];
    for key in ["fvu", "mse", "l0", "dead_frac", "l2_ratio"] {
        let (a, b) = (h[key].as_f64().unwrap(), ev[key].as_f64().unwrap());
        assert!(
            (a - b).abs() <= 1e-9 * b.abs().max(1e-9),
            "{key}: report {a} vs eval {b}"
        );
    }
    assert!(
        h["fvu"].as_f64().unwrap() < 1.0,
        "a trained transcoder explains some variance: {h}"
    );
    let eval_rows = sae_store::Store::open(&x)
        .unwrap()
        .split_rows(sae_store::Split::Eval);
    assert_eq!(r["target"]["store"], s(&y));
    assert_eq!(r["target"]["hook"], OUT);
    assert_eq!(r["target"]["eval_rows"].as_u64(), Some(eval_rows));

    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    let escaped = format!("transcoder: {IN} -&gt; {OUT}");
    assert!(
        html.contains("id=\"transcoder-line\"") && html.contains(&escaped),
        "no transcoder line"
    );
    assert!(html.contains("id=\"heldout-target\""));
    // The card's title (the group label) and `sae inspect` say it too.
    let o = ok(sae(&["inspect", "--report", s(&out), "--latent", "0"]));
    let card = String::from_utf8_lossy(&o.stdout);
    assert!(card.contains(&line) && card.contains("promotes"), "{card}");
}

/// A copy of the trained transcoder whose cfg.json names another output hook.
fn with_output_hook(f: &Fixture, name: &str, hook: &str) -> PathBuf {
    let dir = f.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(&f.tc).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
    }
    let mut cfg = json(&dir.join("cfg.json"));
    cfg["metadata"]["hook_name_out"] = serde_json::json!(hook);
    std::fs::write(dir.join("cfg.json"), cfg.to_string()).unwrap();
    dir
}

#[test]
fn without_a_target_the_report_says_so_and_bad_targets_or_hooks_are_refused() {
    let f = fixture();
    let out = f.dir.path().join("report");
    let x = f.store(IN);
    // No target store: no reconstruction figures, and a note saying how to get them.
    let o = ok(sae(&report_args(
        &f,
        &out,
        &["--store", s(&x), "--max-rows", "400"],
    )));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("pass --target-store DIR"), "{stderr}");
    let r = json(&out.join("report.json"));
    assert!(
        r["heldout_eval"].is_null() && r.get("target").is_none(),
        "{}",
        r["heldout_eval"]
    );
    let notes: Vec<&str> = r["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains(OUT) && n.contains("--target-store")),
        "{notes:?}"
    );
    assert!(
        !r["groups"][0]["logits"].is_null(),
        "the lens needs no target store"
    );

    // An output hook outside the residual stream: the lens is skipped with a note.
    let odd = with_output_hook(&f, "tc-odd", "blocks.1.ln2.hook_normalized");
    let out2 = f.dir.path().join("report-odd");
    let mut args = report_args(&f, &out2, &["--store", s(&x), "--max-rows", "400"]);
    args[2] = s(&odd);
    let o = ok(sae(&args));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not in the residual stream"));
    let r = json(&out2.join("report.json"));
    assert!(r["groups"][0]["logits"].is_null());
    let html = std::fs::read_to_string(out2.join("index.html")).unwrap();
    assert!(
        html.contains("not in the residual stream"),
        "the note is on the page"
    );

    // Bad targets: one clear line each, nothing written.
    let bad = f.dir.path().join("bad");
    let check = |sae_dir: &Path, target: &Path, extra: &[&str], needle: &str| {
        let mut a = report_args(&f, &bad, &["--store", s(&x), "--target-store", s(target)]);
        a[2] = s(sae_dir);
        a.extend_from_slice(extra);
        let err = one_line_error(&sae(&a));
        assert!(err.contains(needle), "{needle:?} not in {err}");
    };
    check(&f.tc, &f.store(POST), &[], "d_out = 16");
    check(&f.tc, &f.store(OTHER), &[], "different hook points");
    check(
        &f.tc,
        &f.store(OUT),
        &["--control", "untrained"],
        "not supported for transcoders",
    );
    let plain = f.dir.path().join("plain");
    ok(sae(&[
        "train",
        "--store",
        s(&x),
        "--out",
        s(&plain),
        "--arch",
        "topk",
        "--k",
        "4",
        "--d-sae",
        "32",
        "--steps",
        "20",
        "--batch",
        "64",
    ]));
    check(&plain, &f.store(OUT), &[], "is for transcoders");
    assert!(!bad.exists(), "a refused report writes nothing");
}

#[test]
fn dashboard_header_and_card_say_transcoder_in_a_browser() {
    let f = fixture();
    let out = f.dir.path().join("report");
    let (x, y) = (f.store(IN), f.store(OUT));
    ok(sae(&report_args(
        &f,
        &out,
        &[
            "--store",
            s(&x),
            "--target-store",
            s(&y),
            "--max-rows",
            "400",
        ],
    )));
    let index = out.join("index.html").canonicalize().unwrap();
    let dom = browser::dump_dom(&format!("file://{}#latents/0", index.display()));
    assert!(
        dom.contains("data-rendered=\"true\""),
        "page script did not finish:\n{dom}"
    );
    let title = dom
        .split("id=\"title\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap();
    assert!(
        title.starts_with("Transcoder report: 48 latents"),
        "{title}"
    );
    let meta = dom
        .split("id=\"meta\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap();
    assert!(
        meta.contains(&format!("transcoder: {IN} -&gt; {OUT}")) && meta.contains("d_out 16"),
        "{meta}"
    );
    let card = dom
        .split("id=\"unit-title\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap();
    assert!(
        card.contains(&format!("transcoder: {IN} -&gt; {OUT} #0")),
        "{card}"
    );
    assert!(
        dom.contains(&format!(
            "Logit lens of the decoder row (in the space of {OUT})"
        )),
        "no lens on the card"
    );
}

/// A transcoder whose input is wider than its output (the layer's 64 MLP neurons ->
/// `hook_mlp_out`, 16 wide): the lens reads its decoder rows of d_out = 16, not d_in.
#[test]
fn the_lens_reads_rows_of_the_output_width() {
    let f = fixture();
    let (n, y) = (f.store(POST), f.store(OUT));
    let tc = f.dir.path().join("tc-wide");
    ok(sae(&[
        "train",
        "--store",
        s(&n),
        "--target-store",
        s(&y),
        "--out",
        s(&tc),
        "--arch",
        "batchtopk",
        "--k",
        "4",
        "--d-sae",
        "48",
        "--steps",
        "60",
        "--batch",
        "128",
        "--lr",
        "4e-3",
    ]));
    let out = f.dir.path().join("report");
    let mut args = report_args(
        &f,
        &out,
        &[
            "--store",
            s(&n),
            "--target-store",
            s(&y),
            "--max-rows",
            "400",
        ],
    );
    args[2] = s(&tc);
    ok(sae(&args));
    let r = json(&out.join("report.json"));
    assert_eq!(
        (r["sae"]["d_in"].as_u64(), r["sae"]["d_out"].as_u64()),
        (Some(64), Some(16))
    );
    let by_hand = lens_by_hand(&tc, &f.model);
    let logits = r["groups"][0]["logits"]
        .as_array()
        .expect("a lens on hook_mlp_out");
    assert_eq!(logits.len(), D_SAE);
    for (j, e) in logits.iter().enumerate() {
        check_effects(&e["promoted"], &by_hand[j], true, j);
        check_effects(&e["suppressed"], &by_hand[j], false, j);
    }
}
