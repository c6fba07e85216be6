//! Store round trips, splits, shuffling and damage detection.

use std::collections::HashSet;
use std::path::Path;

use sae_store::*;

fn synth_source() -> Source {
    Source::Synthetic(SynthSource {
        features: 4,
        dim: 3,
        firing_prob: 0.5,
        zipf_exponent: None,
        correlated_groups: None,
        samples: 10,
        seed: 1,
        magnitude: "uniform(0,1)".into(),
    })
}

fn spec(d: usize, dtype: DType, shard_rows: usize, cols: bool) -> StoreSpec {
    StoreSpec {
        d,
        dtype,
        shard_rows,
        source: synth_source(),
        with_token_ids: cols,
        with_doc_ids: cols,
        with_positions: cols,
    }
}

/// Row r holds [r*10, r*10 + 1, ...]; token id = r, doc = r / 4, position = r % 4.
fn write_rows(dir: &Path, rows: usize, d: usize, dtype: DType, shard_rows: usize, eval: u64) {
    let mut w = StoreWriter::create(dir, spec(d, dtype, shard_rows, true)).unwrap();
    for start in (0..rows).step_by(3) {
        let end = (start + 3).min(rows);
        let acts: Vec<f32> = (start..end)
            .flat_map(|r| (0..d).map(move |c| (r * 10 + c) as f32))
            .collect();
        let ids: Vec<u32> = (start as u32..end as u32).collect();
        let docs: Vec<u32> = ids.iter().map(|r| r / 4).collect();
        let pos: Vec<u32> = ids.iter().map(|r| r % 4).collect();
        let batch = RowBatch {
            acts: &acts,
            token_ids: Some(&ids),
            doc_ids: Some(&docs),
            positions: Some(&pos),
        };
        w.push(batch, Some(serde_json::json!({ "next": end })))
            .unwrap();
    }
    w.finish(eval).unwrap();
}

#[test]
fn roundtrip_all_dtypes_in_order() {
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        let dir = tempfile::tempdir().unwrap();
        write_rows(dir.path(), 20, 3, dtype, 5, 4);
        let store = Store::open(dir.path()).unwrap();
        let m = store.manifest();
        assert_eq!((m.rows, m.d, m.dtype, m.eval_rows), (20, 3, dtype, 4));
        // push() flushes whole batches of 3 once >= 5 rows are buffered: shards of 6, 6, 6, 2.
        let sizes: Vec<u64> = m.shards.iter().map(|s| s.rows).collect();
        assert_eq!(sizes, vec![6, 6, 6, 2]);
        let mut next = 0u64;
        for chunk in store.chunks(Split::All) {
            let c = chunk.unwrap();
            assert_eq!(c.start_row, next);
            for r in 0..c.rows {
                let g = c.start_row as usize + r;
                // Values up to 192 are exact in f16 and bf16 only when small; compare with tolerance.
                for col in 0..3 {
                    let want = (g * 10 + col) as f32;
                    let got = c.acts[r * 3 + col];
                    assert!(
                        (got - want).abs() <= want * 0.004,
                        "{dtype:?} {got} vs {want}"
                    );
                }
                assert_eq!(c.token_ids.as_ref().unwrap()[r], g as u32);
                assert_eq!(c.doc_ids.as_ref().unwrap()[r], g as u32 / 4);
                assert_eq!(c.positions.as_ref().unwrap()[r], g as u32 % 4);
            }
            next += c.rows as u64;
        }
        assert_eq!(next, 20);
    }
}

#[test]
fn splits_partition_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    write_rows(dir.path(), 20, 2, DType::F32, 5, 7);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.split_rows(Split::Train), 13);
    assert_eq!(store.split_rows(Split::Eval), 7);
    let ids = |split| -> Vec<u32> {
        store
            .chunks(split)
            .flat_map(|c| c.unwrap().token_ids.unwrap())
            .collect()
    };
    assert_eq!(ids(Split::Train), (0..13).collect::<Vec<_>>());
    assert_eq!(ids(Split::Eval), (13..20).collect::<Vec<_>>());
}

#[test]
fn shuffled_is_seeded_covers_an_epoch_and_stays_in_split() {
    let dir = tempfile::tempdir().unwrap();
    write_rows(dir.path(), 60, 2, DType::F32, 7, 10);
    let store = Store::open(dir.path()).unwrap();
    let opts = ShuffleOptions {
        batch: 10,
        buffer_rows: 20,
        seed: 9,
    };
    let take = |seed: u64, n: usize| -> Vec<Vec<f32>> {
        let mut it = store.shuffled(Split::Train, ShuffleOptions { seed, ..opts });
        (0..n).map(|_| it.next_batch().unwrap()).collect()
    };
    let a = take(9, 5);
    assert_eq!(a, take(9, 5), "same seed, same stream");
    assert_ne!(a, take(10, 5), "another seed, another stream");
    // The first epoch (50 train rows = 5 batches) yields each train row exactly once.
    let rows: Vec<u32> = a
        .iter()
        .flat_map(|b| b.chunks(2).map(|r| r[0] as u32 / 10))
        .collect();
    let set: HashSet<u32> = rows.iter().copied().collect();
    assert_eq!(rows.len(), 50);
    assert_eq!(set, (0..50).collect::<HashSet<_>>());
    let in_order: Vec<u32> = (0..50).collect();
    assert_ne!(rows, in_order, "rows are mixed");
    // skip_batches(n) (replayed on row ids, reading only what stays buffered) then next == the
    // (n+1)-th batch, within the first epoch and several epochs on; skipping after drawing too.
    let long = take(9, 24);
    for n in [1usize, 3, 4, 5, 11, 17, 22] {
        let mut it = store.shuffled(Split::Train, opts);
        it.skip_batches(n as u64).unwrap();
        assert_eq!(it.next_batch().unwrap(), long[n], "skip {n}");
        assert_eq!(it.next_batch().unwrap(), long[n + 1], "skip {n}, one more");
    }
    let mut it = store.shuffled(Split::Train, opts);
    it.next_batch().unwrap();
    it.skip_batches(6).unwrap();
    assert_eq!(it.next_batch().unwrap(), long[7]);
    // Later epochs visit the shards in other orders (the order is seeded by the epoch).
    let epochs: Vec<Vec<u32>> = long[..20]
        .chunks(5)
        .map(|e| {
            e.iter()
                .flat_map(|b| b.chunks(2).map(|r| r[0] as u32 / 10))
                .collect()
        })
        .collect();
    assert!(epochs.windows(2).any(|w| w[0] != w[1]));
    // Endless: past the first epoch it keeps going.
    let mut it = store.shuffled(Split::Eval, opts);
    for _ in 0..7 {
        assert_eq!(it.next_batch().unwrap().len(), 20);
    }
}

#[test]
fn truncated_shard_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_rows(dir.path(), 20, 3, DType::F32, 5, 4);
    let shard = dir.path().join("shard-00001.safetensors");
    let len = std::fs::metadata(&shard).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&shard)
        .unwrap();
    f.set_len(len - 10).unwrap();
    let err = Store::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("shard-00001.safetensors"), "{err}");
    assert!(err.contains("damaged"), "{err}");
}

#[test]
fn non_finite_values_are_named_by_shard_and_row() {
    let dir = tempfile::tempdir().unwrap();
    write_rows(dir.path(), 20, 3, DType::F32, 5, 4);
    // Overwrite row 2 of shard 1 (store row 8), column 1 with NaN, in place.
    let shard = dir.path().join("shard-00001.safetensors");
    let mut bytes = std::fs::read(&shard).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    // `acts` is the first tensor (f32 sorts before u32 at equal alignment; offsets start at 0).
    let meta: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header]).unwrap();
    let start = meta["acts"]["data_offsets"][0].as_u64().unwrap() as usize;
    let at = 8 + header + start + (2 * 3 + 1) * 4;
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&shard, bytes).unwrap();
    let store = Store::open(dir.path()).unwrap();
    let err = store
        .chunks(Split::All)
        .find_map(|c| c.err())
        .unwrap()
        .to_string();
    assert!(err.contains("shard-00001.safetensors"), "{err}");
    assert!(err.contains("row 2 of the shard (store row 8)"), "{err}");
    assert!(err.contains("column 1"), "{err}");
}

#[test]
fn writer_rejects_bad_rows_and_existing_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = StoreWriter::create(dir.path(), spec(2, DType::F32, 4, false)).unwrap();
    assert!(w
        .push(
            RowBatch {
                acts: &[1.0, 2.0, 3.0],
                ..Default::default()
            },
            None
        )
        .is_err());
    let nan = RowBatch {
        acts: &[1.0, f32::INFINITY],
        ..Default::default()
    };
    assert!(w.push(nan, None).is_err());
    let ids = RowBatch {
        acts: &[1.0, 2.0],
        token_ids: Some(&[1]),
        ..Default::default()
    };
    assert!(w.push(ids, None).is_err());
    w.push(
        RowBatch {
            acts: &[1.0, 2.0],
            ..Default::default()
        },
        None,
    )
    .unwrap();
    w.finish(0).unwrap();
    let again = StoreWriter::create(dir.path(), spec(2, DType::F32, 4, false));
    assert!(matches!(again, Err(StoreError::AlreadyExists { .. })));
}

#[test]
fn incomplete_store_is_refused_then_resumed_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = StoreWriter::create(dir.path(), spec(1, DType::F32, 4, false)).unwrap();
    for r in 0..10u32 {
        let acts = [r as f32];
        let batch = RowBatch {
            acts: &acts,
            ..Default::default()
        };
        w.push(batch, Some(serde_json::json!(r + 1))).unwrap();
    }
    // Killed here: rows 8 and 9 were buffered, never flushed; leave debris as a crash would.
    drop(w);
    std::fs::write(dir.path().join("shard-00002.safetensors"), b"partial").unwrap();
    std::fs::write(dir.path().join("manifest.json.tmp"), b"{").unwrap();
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::Incomplete { .. })
    ));

    let mut w = StoreWriter::resume(dir.path(), 4).unwrap();
    assert_eq!(w.rows(), 8);
    let next = w.cursor().unwrap().as_u64().unwrap() as u32;
    assert_eq!(next, 8);
    for r in next..10 {
        let acts = [r as f32];
        w.push(
            RowBatch {
                acts: &acts,
                ..Default::default()
            },
            Some(serde_json::json!(r + 1)),
        )
        .unwrap();
    }
    w.finish(0).unwrap();
    assert!(!dir.path().join("manifest.json.tmp").exists());
    let store = Store::open(dir.path()).unwrap();
    let all: Vec<f32> = store
        .chunks(Split::All)
        .flat_map(|c| c.unwrap().acts)
        .collect();
    assert_eq!(all, (0..10).map(|r| r as f32).collect::<Vec<_>>());
    assert!(matches!(
        StoreWriter::resume(dir.path(), 4),
        Err(StoreError::AlreadyComplete { .. })
    ));
}

#[test]
fn missing_and_bad_manifests_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open(&dir.path().join("nope"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no activation store at"), "{err}");
    std::fs::write(dir.path().join("manifest.json"), "{\"version\": 99}").unwrap();
    let err = Store::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("version 99"), "{err}");
    std::fs::write(
        dir.path().join("manifest.json"),
        "{\"version\": 1, \"bogus\": 2}",
    )
    .unwrap();
    let err = Store::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("bad manifest"), "{err}");
}
