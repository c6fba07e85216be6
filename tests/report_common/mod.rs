//! Shared fixture for the report tests: a small store whose SAE latents are token detectors by
//! construction, a hand-made SAE, and a word-level tokenizer.json whose vocabulary holds HTML.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{Device, Tensor};
use sae_model::{Activation, Sae, SaeConfig};
use sae_store::{DType, RowBatch, Source, StoreSpec, StoreWriter, SynthSource};

/// Payload that would change the page if it ever ran.
pub const IMG: &str = "<img src=x onerror=\"document.title='pwned';document.body.appendChild(document.createElement('pwned'))\">";
pub const SCRIPT: &str = "<script>alert(1)</script>";

/// Vocabulary: ids are indices.
pub fn words() -> Vec<&'static str> {
    vec![
        "the", "cat", "sat", "on", "mat", "dog", "ran", SCRIPT, IMG, "and", "big", "red",
    ]
}

/// Latents: 0 = token "cat"; 1 = previous token "the"; 2 = "sat" after "cat";
/// 3 = the script token; 4 = the img token; 5 = dead.
pub const D_SAE: usize = 6;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
    pub sae: PathBuf,
    pub tokenizer: PathBuf,
    pub tokens: Vec<u32>,
}

fn lcg(s: &mut u64) -> u64 {
    *s = s
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *s >> 33
}

pub fn write_tokenizer(path: &Path) {
    let vocab: serde_json::Map<String, serde_json::Value> = words()
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), (i as u64).into()))
        .collect();
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": null,
        "decoder": null, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "the"}
    });
    std::fs::write(path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
}

/// Rows x = [onehot(token) * m, onehot(previous token) * m'] with m in [1, 1.5); `docs` documents of 40 tokens.
pub fn write_store(dir: &Path, docs: u32, shard_rows: usize, source: Source) -> Vec<u32> {
    let v = words().len();
    let d = 2 * v;
    let mut w = StoreWriter::create(
        dir,
        StoreSpec {
            d,
            dtype: DType::F32,
            shard_rows,
            source,
            with_token_ids: true,
            with_doc_ids: true,
            with_positions: true,
        },
    )
    .unwrap();
    let mut s = 11u64;
    let mut all = Vec::new();
    for doc in 0..docs {
        let (mut acts, mut toks, mut pos) = (vec![], vec![], vec![]);
        let mut prev: Option<usize> = None;
        for p in 0..40u32 {
            // Make "the cat sat" common so that every detector has examples.
            let t = match prev {
                Some(0) if lcg(&mut s).is_multiple_of(2) => 1,
                Some(1) if lcg(&mut s).is_multiple_of(2) => 2,
                _ => (lcg(&mut s) % v as u64) as usize,
            };
            let mut row = vec![0f32; d];
            row[t] = 1.0 + (lcg(&mut s) % 50) as f32 / 100.0;
            if let Some(q) = prev {
                row[v + q] = 1.0 + (lcg(&mut s) % 50) as f32 / 100.0;
            }
            acts.extend(row);
            toks.push(t as u32);
            pos.push(p);
            prev = Some(t);
        }
        let docs_col = vec![doc; 40];
        w.push(
            RowBatch {
                acts: &acts,
                token_ids: Some(&toks),
                doc_ids: Some(&docs_col),
                positions: Some(&pos),
            },
            None,
        )
        .unwrap();
        all.extend(toks);
    }
    w.finish(0).unwrap();
    all
}

pub fn synth_source(samples: u64, dim: usize) -> Source {
    Source::Synthetic(SynthSource {
        features: 0,
        dim,
        firing_prob: 0.0,
        zipf_exponent: None,
        correlated_groups: None,
        samples,
        seed: 0,
        magnitude: "uniform(1,1.5)".into(),
    })
}

/// The provenance of a store harvested from "org/model-a" at `hook`.
pub fn harvest_source(hook: &str) -> Source {
    Source::Harvest(sae_store::HarvestSource {
        model_id: "org/model-a".into(),
        revision: "local".into(),
        hook: hook.into(),
        ctx_len: 40,
        corpus: vec![],
        tokenizer: "tokenizer.json".into(),
        keep_special: false,
        dtype: "f32".into(),
        max_norm_ratio: None,
    })
}

/// The detector SAE described at [`D_SAE`], ReLU, b_dec = 0.
pub fn detector_sae(meta_model: Option<&str>, meta_hook: Option<&str>) -> Sae {
    let v = words().len();
    let d_in = 2 * v;
    let mut w = vec![0f32; d_in * D_SAE];
    let mut b = vec![-0.5f32; D_SAE];
    let mut set = |row: usize, col: usize| w[row * D_SAE + col] = 1.0;
    set(1, 0); // token "cat"
    set(v, 1); // previous "the"
    set(2, 2); // "sat" ...
    set(v + 1, 2); // ... after "cat"
    set(7, 3);
    set(8, 4);
    b[2] = -1.7;
    b[5] = -1.0;
    let mut w_dec = vec![0f32; D_SAE * d_in];
    for l in 0..D_SAE {
        w_dec[l * d_in + l] = 1.0;
    }
    let dev = Device::Cpu;
    let mut cfg = SaeConfig::new(d_in, D_SAE, Activation::Relu);
    cfg.metadata.model_name = meta_model.map(String::from);
    cfg.metadata.hook_name = meta_hook.map(String::from);
    Sae::new(
        cfg,
        Tensor::from_vec(w, (d_in, D_SAE), &dev).unwrap(),
        Tensor::from_vec(b, D_SAE, &dev).unwrap(),
        Tensor::from_vec(w_dec, (D_SAE, d_in), &dev).unwrap(),
        Tensor::zeros(d_in, candle_core::DType::F32, &dev).unwrap(),
        None,
    )
    .unwrap()
}

pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let tokens = write_store(&store, 30, 256, synth_source(1200, 2 * words().len()));
    let sae = dir.path().join("sae");
    detector_sae(None, None).save(&sae, None).unwrap();
    let tokenizer = dir.path().join("tokenizer.json");
    write_tokenizer(&tokenizer);
    Fixture {
        dir,
        store,
        sae,
        tokenizer,
        tokens,
    }
}

pub fn sae(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sae"))
        .args(args)
        .output()
        .unwrap()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `sae report` on the fixture into `out` and asserts success.
pub fn report(f: &Fixture, out: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "report",
        "--sae",
        s(&f.sae),
        "--store",
        s(&f.store),
        "--tokenizer",
        s(&f.tokenizer),
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    let o = sae(&args);
    assert!(
        o.status.success(),
        "sae report failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}
