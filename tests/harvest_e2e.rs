//! `sae harvest` end to end on the packaged real models (scripts/fetch-models.sh) over the Debian text corpus
//! (scripts/fetch-corpus.sh), and `sae train` reading what it wrote.

mod common;

use common::{corpus, ok, s, MINILM, SMOLLM2};
use sae_store::{Split, Store};
use std::path::Path;

/// `sae train` reads a harvested store: a small TopK SAE (k 8, expansion 2) trains on it and is
/// saved under `tmp/sae`.
fn trains_a_small_sae(store: &Path, tmp: &Path, steps: &str, batch: &str) {
    let sae_out = tmp.join("sae");
    ok(common::sae_offline(&[
        "train",
        "--store",
        s(store),
        "--out",
        s(&sae_out),
        "--arch",
        "topk",
        "--k",
        "8",
        "--expansion",
        "2",
        "--steps",
        steps,
        "--batch",
        batch,
    ]));
    assert!(sae_out.join("cfg.json").is_file());
}

#[test]
fn minilm_harvest_writes_stores_that_train_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("acts");
    let corpus = corpus().join("fortunes-science.jsonl");
    ok(common::sae_offline(&[
        "harvest",
        "--model",
        MINILM,
        "--hook",
        "blocks.2.hook_resid_post",
        "--hook",
        "blocks.1.mlp.hook_post",
        "--corpus",
        s(&corpus),
        "--out",
        s(&out),
        "--max-tokens",
        "1500",
        "--ctx-len",
        "64",
        "--batch",
        "8",
    ]));
    let store = Store::open(&out.join("blocks.2.hook_resid_post")).unwrap();
    let m = store.manifest();
    assert!(m.complete);
    assert_eq!((m.rows, m.d), (1500, 384));
    assert_eq!(
        Store::open(&out.join("blocks.1.mlp.hook_post"))
            .unwrap()
            .d(),
        1536
    );
    let sae_store::Source::Harvest(src) = &m.source else {
        panic!("not a harvest source")
    };
    assert_eq!(
        (src.model_id.as_str(), src.hook.as_str(), src.ctx_len),
        (MINILM, "blocks.2.hook_resid_post", 64)
    );
    assert_eq!(src.corpus, vec![corpus.display().to_string()]);
    // No [CLS] (101) / [SEP] (102) rows; positions start after [CLS]; documents appear in order.
    let mut prev_doc = 0;
    for chunk in store.chunks(Split::All) {
        let c = chunk.unwrap();
        let (ids, docs, pos) = (
            c.token_ids.unwrap(),
            c.doc_ids.unwrap(),
            c.positions.unwrap(),
        );
        assert!(ids.iter().all(|&t| t != 101 && t != 102));
        assert!(pos.iter().all(|&p| (1..63).contains(&p)));
        assert!(docs.iter().all(|&d| d >= prev_doc));
        prev_doc = *docs.last().unwrap();
        assert!(c.acts.iter().all(|x| x.is_finite()));
    }
    assert!(prev_doc > 5, "several documents were read");
    trains_a_small_sae(
        &out.join("blocks.2.hook_resid_post"),
        tmp.path(),
        "20",
        "64",
    );
}

#[test]
fn smollm2_harvest_writes_a_store_that_train_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("acts");
    ok(common::sae_offline(&[
        "harvest",
        "--model",
        SMOLLM2,
        "--hook",
        "blocks.4.hook_resid_post",
        "--corpus",
        s(&corpus().join("jargon.txt")),
        "--out",
        s(&out),
        "--max-tokens",
        "384",
        "--ctx-len",
        "64",
        "--batch",
        "6",
        "--dtype",
        "f16",
        "--max-norm-ratio",
        "0",
    ]));
    let store = Store::open(&out.join("blocks.4.hook_resid_post")).unwrap();
    assert_eq!((store.manifest().rows, store.d()), (384, 576));
    assert_eq!(store.manifest().dtype, sae_store::DType::F16);
    // SmolLM2's tokenizer adds no BOS, so the harvester prepends it (position 0) and leaves it out:
    // one long document split into windows of BOS + 63 tokens, stored positions 1..63 in turn.
    let src = match &store.manifest().source {
        sae_store::Source::Harvest(h) => h.clone(),
        other => panic!("not a harvest: {other:?}"),
    };
    assert!(
        src.tokenizer.contains("BOS <|endoftext|> prepended"),
        "{}",
        src.tokenizer
    );
    let c = store.chunks(Split::All).next().unwrap().unwrap();
    let pos = c.positions.clone().unwrap();
    assert_eq!(&pos[..66], &(1..64).chain(1..4).collect::<Vec<u32>>()[..]);
    assert!(c.doc_ids.clone().unwrap().iter().all(|&d| d == 0));
    // The attention sink sits on BOS: the first stored position has an ordinary residual norm
    // (without BOS its median norm is ~100x the others').
    let norms: Vec<f32> = c
        .acts
        .chunks(576)
        .map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt())
        .collect();
    let median = |mut v: Vec<f32>| {
        v.sort_by(f32::total_cmp);
        v[v.len() / 2]
    };
    let first: Vec<f32> = norms
        .iter()
        .zip(&pos)
        .filter(|(_, &p)| p == 1)
        .map(|(n, _)| *n)
        .collect();
    let (first, all) = (median(first), median(norms));
    assert!(
        first < 3.0 * all,
        "first position median norm {first} vs all {all}"
    );
    // By default positions whose norm is > 10x the batch median (delimiter tokens acting as secondary
    // sinks reach ~11x at this layer) are left out; the manifest records the ratio.
    let filtered = tmp.path().join("filtered");
    let out_f = common::sae_offline(&[
        "harvest",
        "--model",
        SMOLLM2,
        "--hook",
        "blocks.4.hook_resid_post",
        "--corpus",
        s(&corpus().join("jargon.txt")),
        "--out",
        s(&filtered),
        "--max-tokens",
        "384",
        "--ctx-len",
        "64",
        "--batch",
        "6",
    ]);
    let stderr = String::from_utf8_lossy(&ok(out_f).stderr).into_owned();
    assert!(stderr.contains("left out"), "{stderr}");
    let f = Store::open(&filtered.join("blocks.4.hook_resid_post")).unwrap();
    assert_eq!(f.manifest().rows, 384);
    match &f.manifest().source {
        sae_store::Source::Harvest(h) => assert_eq!(h.max_norm_ratio, Some(10.0)),
        other => panic!("not a harvest: {other:?}"),
    }
    let kept: Vec<f32> = f
        .chunks(Split::All)
        .flat_map(|c| c.unwrap().acts)
        .collect::<Vec<f32>>()
        .chunks(576)
        .map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt())
        .collect();
    let worst = kept.iter().copied().fold(0f32, f32::max);
    assert!(
        worst < 10.5 * all,
        "kept a row of norm {worst} (median {all})"
    );
    trains_a_small_sae(
        &out.join("blocks.4.hook_resid_post"),
        tmp.path(),
        "10",
        "32",
    );
}

#[test]
fn hooks_lists_every_hook_point() {
    let out = ok(common::sae_offline(&["hooks", "--model", MINILM, "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["n_layers"], 6);
    let hooks = v["hooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 36);
    assert_eq!(hooks[2]["name"], "blocks.0.ln2.hook_normalized");
    assert_eq!(hooks[2]["width"], 384);
    assert_eq!(hooks[3]["name"], "blocks.0.mlp.hook_post");
    assert_eq!(hooks[3]["width"], 1536);
}
