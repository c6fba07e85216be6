//! The row-alignment check of a transcoder's two stores, on stores written here with token ids,
//! document ids and positions: shards larger than the check's window (65,536 rows) so that it
//! compares several windows of one shard; a pair that agrees passes; one token id, document id or
//! position changed in a later window of a later shard is found at its store row; an id column
//! present in one store only, and a different shard layout, are named.

use std::path::Path;

use sae_store::{DType, ImportSource, RowBatch, Source, Store, StoreSpec, StoreWriter};
use sae_train::check_aligned;

const ROWS: usize = 150_000;
const SHARD_ROWS: usize = 70_000;
const BATCH: usize = 10_000;

/// Which id column to change, at which row, for one of the stores.
#[derive(Clone, Copy, Default)]
struct Change {
    column: usize,
    row: Option<usize>,
}

/// A store of `d`-wide rows with ids (each column derived from the row index), `change` applied;
/// `positions` false leaves that column out.
fn store(dir: &Path, d: usize, shard_rows: usize, change: Change, positions: bool) -> Store {
    let spec = StoreSpec {
        d,
        dtype: DType::F32,
        shard_rows,
        source: Source::Import(ImportSource {
            files: Vec::new(),
            token_ids: Vec::new(),
            model_id: Some("m".into()),
            hook: None,
        }),
        with_token_ids: true,
        with_doc_ids: true,
        with_positions: positions,
    };
    let mut w = StoreWriter::create(dir, spec).unwrap();
    let mut cols: [Vec<u32>; 3] = [
        (0..ROWS as u32).map(|r| r % 5000).collect(),
        (0..ROWS as u32).map(|r| r / 128).collect(),
        (0..ROWS as u32).map(|r| r % 128).collect(),
    ];
    if let Some(r) = change.row {
        cols[change.column][r] += 1;
    }
    // Batches of 10,000 rows: the writer cuts a shard once `shard_rows` rows are buffered.
    let acts = vec![0.5f32; BATCH * d];
    for r0 in (0..ROWS).step_by(BATCH) {
        let col = |c: usize| &cols[c][r0..r0 + BATCH];
        let batch = RowBatch {
            acts: &acts,
            token_ids: Some(col(0)),
            doc_ids: Some(col(1)),
            positions: positions.then(|| col(2)),
        };
        w.push(batch, None).unwrap();
    }
    w.finish(1000).unwrap();
    Store::open(dir).unwrap()
}

#[test]
fn aligned_stores_pass_and_each_mismatch_is_named_at_its_row() {
    let tmp = tempfile::tempdir().unwrap();
    let x = store(
        &tmp.path().join("x"),
        3,
        SHARD_ROWS,
        Change::default(),
        true,
    );
    let y = store(
        &tmp.path().join("y"),
        2,
        SHARD_ROWS,
        Change::default(),
        true,
    );
    check_aligned(&x, &y).unwrap();
    // Row 140,001: shard 2's second row (shard 1's second window held rows 135,536..140,000).
    for (column, name) in [(0, "token_ids"), (1, "doc_ids"), (2, "positions")] {
        let change = Change {
            column,
            row: Some(140_001),
        };
        let dir = tmp.path().join(format!("c{column}"));
        let z = store(&dir, 2, SHARD_ROWS, change, true);
        let e = check_aligned(&x, &z).unwrap_err().to_string();
        assert!(
            e.contains("not row-aligned") && e.contains(&format!("{name} differ at row 140001")),
            "{e}"
        );
    }
    // Within the first shard, in its second window.
    let change = Change {
        column: 0,
        row: Some(65_540),
    };
    let z = store(&tmp.path().join("w"), 2, SHARD_ROWS, change, true);
    let e = check_aligned(&x, &z).unwrap_err().to_string();
    assert!(e.contains("token_ids differ at row 65540"), "{e}");
    let no_pos = store(
        &tmp.path().join("np"),
        2,
        SHARD_ROWS,
        Change::default(),
        false,
    );
    let e = check_aligned(&x, &no_pos).unwrap_err().to_string();
    assert!(
        e.contains("positions differ at row 0 (present vs absent)"),
        "{e}"
    );
    let other = store(&tmp.path().join("o"), 2, 50_000, Change::default(), true);
    let e = check_aligned(&x, &other).unwrap_err().to_string();
    assert!(e.contains("shard 0 holds 70000 rows vs 50000"), "{e}");
}
