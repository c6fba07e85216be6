//! A live stream gives exactly the rows a harvest with the same settings stores: each epoch's draws are a
//! permutation of the harvested rows (buffer larger than the epoch), at every hook, from one forward pass
//! per piece shared by consumers of different widths and rates; the next epoch gives them again.

// The packaged models, as sae-lm's tests find them.
#[path = "../../sae-lm/tests/common/mod.rs"]
mod common;

use std::ops::ControlFlow;
use std::path::Path;

use candle_core::Device;
use sae_harvest::{harvest, Cursor, HarvestConfig, Stream, StreamBatches, StreamConfig};
use sae_lm::{Model, TextTokenizer};
use sae_store::{DType, ShuffleOptions, Split, Store};

const HOOKS: [&str; 2] = ["blocks.1.hook_resid_post", "blocks.0.mlp.hook_post"];

/// Rows as sorted bit patterns (a multiset of rows).
fn multiset(acts: &[f32], d: usize) -> Vec<Vec<u32>> {
    let mut rows: Vec<Vec<u32>> = acts
        .chunks(d)
        .map(|r| r.iter().map(|v| v.to_bits()).collect())
        .collect();
    rows.sort();
    rows
}

fn stored(dir: &Path) -> (Vec<f32>, usize) {
    let store = Store::open(dir).unwrap();
    let mut acts = Vec::new();
    for c in store.chunks(Split::All) {
        acts.extend(c.unwrap().acts);
    }
    (acts, store.d())
}

fn draw(s: &mut StreamBatches<'_, '_>, batch: usize, n: usize) -> Vec<f32> {
    let mut all = Vec::new();
    let mut out = vec![0f32; batch * s.d()];
    for _ in 0..n {
        s.next_batch_into(&mut out).unwrap();
        all.extend_from_slice(&out);
    }
    all
}

#[test]
fn every_epoch_of_a_stream_is_a_permutation_of_the_harvested_rows() {
    let resolved = common::real_model(common::MINILM);
    let model = Model::load(&resolved, &Device::Cpu).unwrap();
    let tok = TextTokenizer::load(&resolved).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let corpus_file = tmp.path().join("corpus.jsonl");
    let lines: Vec<String> = (0..40)
        .map(|i| {
            let words = "words and more words ".repeat(i % 7 + 1);
            format!("{{\"text\": \"Document {i} says: {words} the end.\"}}")
        })
        .collect();
    std::fs::write(&corpus_file, lines.join("\n")).unwrap();
    let hcfg = HarvestConfig {
        hooks: HOOKS.iter().map(|h| h.to_string()).collect(),
        corpus: vec![corpus_file.clone()],
        out: tmp.path().join("acts"),
        ctx_len: 16,
        max_tokens: Some(700),
        batch: 4,
        dtype: DType::F32,
        keep_special: false,
        shard_rows: 1000,
        eval_frac: 0.0,
        max_norm_ratio: Some(10.0),
    };
    let mut quiet = |_: String| {};
    let cont = &mut |_: &sae_harvest::HarvestProgress| ControlFlow::Continue(());
    harvest(&resolved, &model, &tok, &hcfg, cont, &mut quiet).unwrap();
    let corpus = sae_harvest::Corpus::open(&[corpus_file]).unwrap();
    let scfg = StreamConfig {
        hooks: hcfg.hooks.clone(),
        ctx_len: 16,
        batch: 4,
        keep_special: false,
        max_norm_ratio: Some(10.0),
        start: Cursor::default(),
        epoch_rows: Some(700),
        model: "minilm".into(),
        log: tmp.path().join("pieces.jsonl"),
    };
    std::thread::scope(|scope| {
        let stream = Stream::open(scope, &model, &tok, &corpus, scfg).unwrap();
        let opts = |batch, seed| ShuffleOptions {
            batch,
            buffer_rows: 10_000,
            seed,
        };
        let mut a = stream.consumer(HOOKS[0], opts(100, 1)).unwrap();
        let mut b = stream.consumer(HOOKS[1], opts(70, 2)).unwrap();
        let (ra, da) = stored(&tmp.path().join("acts").join(HOOKS[0]));
        let (rb, db) = stored(&tmp.path().join("acts").join(HOOKS[1]));
        assert_eq!((da, db, a.d(), b.d()), (384, 1536, 384, 1536));
        let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
        for _ in 0..7 {
            got_a.extend(draw(&mut a, 100, 1));
            got_b.extend(draw(&mut b, 70, 1));
        }
        got_b.extend(draw(&mut b, 70, 3));
        assert_eq!(multiset(&got_a, da), multiset(&ra, da));
        assert_eq!(multiset(&got_b, db), multiset(&rb, db));
        assert_ne!(got_a, ra, "the rows come out mixed, not in corpus order");
        // The second epoch runs the corpus again and gives the same rows.
        let again = draw(&mut a, 100, 7);
        assert_eq!(multiset(&again, da), multiset(&ra, da));
        let pieces = std::fs::read_to_string(tmp.path().join("pieces.jsonl"))
            .unwrap()
            .lines()
            .count() as u64
            - 1;
        let st = stream.stats();
        assert_eq!(
            st.forwards,
            2 * pieces,
            "one forward per piece for both hooks"
        );
        assert_eq!(st.refills, 0);
    });
}
