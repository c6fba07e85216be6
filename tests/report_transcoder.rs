//! `sae report` of a transcoder, end to end on the tiny GPT-2 fixture (given a word-level
//! tokenizer here): one harvest of `blocks.1.ln2.hook_normalized` (input), `blocks.1.hook_mlp_out`
//! (target) and `blocks.1.mlp.hook_post` (the layer's neurons), a short `sae train
//! --target-store`, then the report. Checked against independent computations: the logit lens of
//! each latent equals its decoder row W_dec_j (read from the saved weights) times the final
//! LayerNorm weight times the unembedding (read from the model's safetensors); the report's fvu
//! equals `sae eval --target-store`'s; report.json and index.html name both hooks.

mod common;
mod report_transcoder_common;

use std::path::{Path, PathBuf};

use common::{ok, one_line_error, s, sae};
use report_transcoder_common::*;

#[test]
fn transcoder_report_names_both_hooks_lens_on_the_output_side_fvu_against_the_target() {
    let f = fixture();
    let out = f.dir.path().join("report");
    let (x, y, n) = (f.store(IN), f.store(OUT), f.store(POST));
    let extra = format!(
        "--store {} --target-store {} --neurons {} --top 3",
        s(&x),
        s(&y),
        s(&n)
    );
    // Spliced into the model first (`sae eval --model` writes tc/eval_spliced.json).
    let corpus = f.dir.path().join("corpus");
    run(format!(
        "eval --sae {} --model {} --corpus {} --max-tokens 256 --ctx-len 32 --no-bos",
        s(&f.tc),
        s(&f.model),
        s(&corpus)
    ));
    let o = ok(report(&f, &f.tc, &out, extra));
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
    check_lens(&latents["logits"], &f.tc, &f.model);

    // fvu and the rest against the target, exactly as `sae eval --target-store` gives them.
    let ev = run(format!(
        "eval --sae {} --store {} --target-store {} --json",
        s(&f.tc),
        s(&x),
        s(&y)
    ));
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
    assert_eq!(r["spliced_eval"]["hook"], IN);
    assert_eq!(r["spliced_eval"]["hook_out"], OUT);
    assert!(
        html.contains(&format!("hook {IN} -&gt; {OUT} ·")),
        "spliced hooks"
    );
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
    let few = format!("--store {} --max-rows 400", s(&x));
    let o = ok(report(&f, &f.tc, &out, few.clone()));
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
    let o = ok(report(&f, &odd, &out2, few));
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
    let check = |sae_dir: &Path, target: &Path, extra: &str, needle: &str| {
        let extra = format!("--store {} --target-store {} {extra}", s(&x), s(target));
        let err = one_line_error(&report(&f, sae_dir, &bad, extra));
        assert!(err.contains(needle), "{needle:?} not in {err}");
    };
    check(&f.tc, &f.store(POST), "", "d_out = 16");
    check(&f.tc, &f.store(OTHER), "", "different hook points");
    let untrained = "--control untrained";
    check(
        &f.tc,
        &f.store(OUT),
        untrained,
        "not supported for transcoders",
    );
    let plain = f.dir.path().join("plain");
    run(format!(
        "train --store {} --out {} --arch topk --k 4 --d-sae 32 --steps 20 --batch 64",
        s(&x),
        s(&plain)
    ));
    check(&plain, &f.store(OUT), "", "is for transcoders");
    assert!(!bad.exists(), "a refused report writes nothing");
}

/// A transcoder whose input is wider than its output (the layer's 64 MLP neurons ->
/// `hook_mlp_out`, 16 wide): the lens reads its decoder rows of d_out = 16, not d_in.
#[test]
fn the_lens_reads_rows_of_the_output_width() {
    let f = fixture();
    let (n, y) = (f.store(POST), f.store(OUT));
    let tc = f.dir.path().join("tc-wide");
    run(format!(
        "train --store {} --target-store {} --out {} --arch batchtopk --k 4 --d-sae 48 --steps 60 --batch 128 --lr 4e-3",
        s(&n),
        s(&y),
        s(&tc)
    ));
    let out = f.dir.path().join("report");
    let extra = format!("--store {} --target-store {} --max-rows 400", s(&n), s(&y));
    ok(report(&f, &tc, &out, extra));
    let r = json(&out.join("report.json"));
    assert_eq!(
        (r["sae"]["d_in"].as_u64(), r["sae"]["d_out"].as_u64()),
        (Some(64), Some(16))
    );
    check_lens(&r["groups"][0]["logits"], &tc, &f.model);
}
