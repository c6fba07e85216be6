//! Shared fixture of the transcoder report tests: the tiny GPT-2 fixture with a word-level
//! tokenizer, one harvest of its layer-1 hooks, a short `sae train --target-store`, and the logit
//! lens computed by hand from the two safetensors files.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use candle_core::{Device, Tensor};

use crate::common::{gpt2_with_tokenizer, ok, s, sae};

pub const IN: &str = "blocks.1.ln2.hook_normalized";
pub const OUT: &str = "blocks.1.hook_mlp_out";
pub const POST: &str = "blocks.1.mlp.hook_post";
/// Another hook of the model's width, for the mismatch check.
pub const OTHER: &str = "blocks.0.hook_mlp_out";
pub const D_SAE: usize = 48;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub model: PathBuf,
    pub harvest: PathBuf,
    pub tc: PathBuf,
}

impl Fixture {
    pub fn store(&self, hook: &str) -> PathBuf {
        self.harvest.join(hook)
    }
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
pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("gpt2");
    gpt2_with_tokenizer(&model);
    let corpus = corpus(dir.path());
    let harvest = dir.path().join("acts");
    run(format!(
        "harvest --model {} --hook {IN} --hook {OUT} --hook {POST} --hook {OTHER} --corpus {} --out {} --ctx-len 32 --no-bos --eval-frac 0.2 --shard-rows 1024",
        s(&model),
        s(&corpus),
        s(&harvest)
    ));
    let tc = dir.path().join("tc");
    let (x, y) = (harvest.join(IN), harvest.join(OUT));
    run(format!(
        "train --store {} --target-store {} --out {} --arch batchtopk --k 4 --d-sae 48 --steps 150 --batch 128 --lr 4e-3",
        s(&x),
        s(&y),
        s(&tc)
    ));
    Fixture {
        dir,
        model,
        harvest,
        tc,
    }
}

/// Runs `sae` with a command line of words without spaces (the temporary paths have none).
pub fn run(line: String) -> Output {
    ok(sae(&line.split_whitespace().collect::<Vec<_>>()))
}

pub fn json(path: &Path) -> serde_json::Value {
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

/// Every latent's promoted and suppressed tokens against the lens by hand.
pub fn check_lens(logits: &serde_json::Value, tc: &Path, model: &Path) {
    let by_hand = lens_by_hand(tc, model);
    let logits = logits.as_array().expect("a logit lens on hook_mlp_out");
    assert_eq!(logits.len(), D_SAE);
    for (j, e) in logits.iter().enumerate() {
        check_effects(&e["promoted"], &by_hand[j], true, j);
        check_effects(&e["suppressed"], &by_hand[j], false, j);
    }
}

/// `sae report --sae TC --model GPT2 --out OUT EXTRA` (not checked: some are meant to fail).
pub fn report(f: &Fixture, tc: &Path, out: &Path, extra: String) -> Output {
    let line = format!(
        "report --sae {} --model {} --out {} {extra}",
        s(tc),
        s(&f.model),
        s(out)
    );
    sae(&line.split_whitespace().collect::<Vec<_>>())
}
