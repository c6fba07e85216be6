//! An interrupted harvest resumes with no duplicated or missing rows: the resumed stores equal, row for row,
//! the stores of a run that was never interrupted.

// The packaged models, as sae-lm's tests find them.
#[path = "../../sae-lm/tests/common/mod.rs"]
mod common;

use std::ops::ControlFlow;
use std::path::Path;

use candle_core::Device;
use sae_harvest::{harvest, HarvestConfig};
use sae_lm::{Model, TextTokenizer};
use sae_store::{Chunk, DType, Split, Store};

fn read_all(dir: &Path) -> (Vec<f32>, Vec<u32>, Vec<u32>, Vec<u32>) {
    let store = Store::open(dir).unwrap();
    assert!(store.manifest().complete);
    let mut out = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for c in store.chunks(Split::All) {
        let c: Chunk = c.unwrap();
        out.0.extend(c.acts);
        out.1.extend(c.token_ids.unwrap());
        out.2.extend(c.doc_ids.unwrap());
        out.3.extend(c.positions.unwrap());
    }
    out
}

#[test]
fn interrupted_harvest_resumes_without_duplicates_or_gaps() {
    let resolved = common::real_model(common::MINILM);
    let model = Model::load(&resolved, &Device::Cpu).unwrap();
    let tok = TextTokenizer::load(&resolved).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus.jsonl");
    let lines: Vec<String> = (0..40)
        .map(|i| {
            format!(
                "{{\"text\": \"Document {i} says: {} the end.\"}}",
                "words and more words ".repeat(i % 7 + 1)
            )
        })
        .collect();
    std::fs::write(&corpus, lines.join("\n")).unwrap();
    let cfg = |out: &str| HarvestConfig {
        hooks: vec![
            "blocks.1.hook_resid_post".into(),
            "blocks.0.mlp.hook_post".into(),
        ],
        corpus: vec![corpus.clone()],
        out: tmp.path().join(out),
        ctx_len: 16,
        max_tokens: Some(700),
        batch: 4,
        dtype: DType::F32,
        keep_special: false,
        shard_rows: 50,
        eval_frac: 0.1,
        max_norm_ratio: Some(10.0),
    };
    let mut quiet = |_: String| {};
    let whole = harvest(
        &resolved,
        &model,
        &tok,
        &cfg("whole"),
        &mut |_| ControlFlow::Continue(()),
        &mut quiet,
    )
    .unwrap();
    assert!(whole.complete);
    assert_eq!(whole.rows, 700);

    // Stop after 7 batches: rows buffered since the last shard are lost, as in a crash.
    let mut batches = 0;
    let mut stop = |_: &sae_harvest::HarvestProgress| {
        batches += 1;
        if batches == 7 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let first = harvest(
        &resolved,
        &model,
        &tok,
        &cfg("resumed"),
        &mut stop,
        &mut quiet,
    )
    .unwrap();
    assert!(!first.complete);
    let partial =
        sae_store::Manifest::read(&tmp.path().join("resumed/blocks.1.hook_resid_post")).unwrap();
    assert!(
        !partial.complete && partial.rows > 0 && partial.rows < 700,
        "{} rows",
        partial.rows
    );
    let again = harvest(
        &resolved,
        &model,
        &tok,
        &cfg("resumed"),
        &mut |_| ControlFlow::Continue(()),
        &mut quiet,
    )
    .unwrap();
    assert!(again.complete);
    assert!(
        again.resumed_rows > 0 && again.resumed_rows < 700,
        "resumed at {}",
        again.resumed_rows
    );
    for hook in ["blocks.1.hook_resid_post", "blocks.0.mlp.hook_post"] {
        let a = read_all(&tmp.path().join("whole").join(hook));
        let b = read_all(&tmp.path().join("resumed").join(hook));
        assert_eq!(a.1, b.1, "{hook} token ids");
        assert_eq!(a.2, b.2, "{hook} doc ids");
        assert_eq!(a.3, b.3, "{hook} positions");
        let diff =
            a.0.iter()
                .zip(&b.0)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
        assert_eq!(a.0.len(), b.0.len());
        assert!(diff < 1e-5, "{hook} acts differ by {diff}");
    }
    // A third run finds both stores complete and does nothing.
    let done = harvest(
        &resolved,
        &model,
        &tok,
        &cfg("resumed"),
        &mut |_| ControlFlow::Continue(()),
        &mut quiet,
    )
    .unwrap();
    assert_eq!((done.tokens, done.rows), (0, 700));
    // Different settings into the same folder are refused.
    let mut other = cfg("resumed");
    other.ctx_len = 32;
    let err = harvest(
        &resolved,
        &model,
        &tok,
        &other,
        &mut |_| ControlFlow::Continue(()),
        &mut quiet,
    )
    .unwrap_err();
    assert!(err.to_string().contains("other settings"), "{err}");
}

#[test]
fn batches_pack_whole_contexts_within_the_token_budget_and_resume_at_their_boundaries() {
    use sae_harvest::{Batcher, Contexts, Corpus, Cursor};
    let resolved = common::real_model(common::MINILM);
    let tok = TextTokenizer::load(&resolved).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let text: Vec<String> = (0..30)
        .map(|i| {
            format!(
                "{{\"text\": \"doc {i} {}\"}}",
                "some words ".repeat(i % 9 + 1)
            )
        })
        .collect();
    std::fs::write(tmp.path().join("c.jsonl"), text.join("\n")).unwrap();
    let corpus = Corpus::open(&[tmp.path().to_path_buf()]).unwrap();
    let mut quiet = |_: String| {};
    let all: Vec<_> = Contexts::new(&corpus, &tok, 16, Cursor::default(), &mut quiet)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut quiet = |_: String| {};
    let contexts = Contexts::new(&corpus, &tok, 16, Cursor::default(), &mut quiet).unwrap();
    let batches: Vec<_> = Batcher::new(contexts, 40).map(Result::unwrap).collect();
    // Every context once, in order, whole; no batch over 40 tokens; batches hold several short contexts.
    let flat: Vec<_> = batches.iter().flat_map(|b| b.contexts.clone()).collect();
    assert_eq!(flat, all);
    assert!(batches
        .iter()
        .all(|b| b.tokens() <= 40 && !b.contexts.is_empty()));
    assert!(
        batches.len() < all.len() / 2,
        "{} batches of {} contexts",
        batches.len(),
        all.len()
    );
    // Starting from the cursor after batch 3 gives batches 4.. again.
    let last = batches[3].contexts.last().unwrap();
    let cursor = Cursor {
        doc: last.doc,
        window: last.window + 1,
        rows: 0,
    };
    let mut quiet = |_: String| {};
    let contexts = Contexts::new(&corpus, &tok, 16, cursor, &mut quiet).unwrap();
    let again: Vec<_> = Batcher::new(contexts, 40).map(Result::unwrap).collect();
    let tail: Vec<_> = batches[4..].iter().map(|b| b.contexts.clone()).collect();
    assert_eq!(
        again.iter().map(|b| b.contexts.clone()).collect::<Vec<_>>(),
        tail
    );
}
