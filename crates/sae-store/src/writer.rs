//! Writing a store: rows are buffered and flushed as whole shards; each shard and each manifest
//! update appears atomically, so an interrupted producer can resume from the last cursor.

use std::fs;
use std::path::{Path, PathBuf};

use crate::manifest::Manifest;
use crate::shard::{encode, first_non_finite, DOC_IDS, POSITIONS, TOKEN_IDS};
use crate::{
    atomic_write, DType, ShardMeta, Source, StoreError, MANIFEST_FORMAT, MANIFEST_VERSION,
};

/// What a new store will hold.
#[derive(Clone, Debug)]
pub struct StoreSpec {
    /// Width of one activation row.
    pub d: usize,
    /// On-disk element type of the activations.
    pub dtype: DType,
    /// A shard is flushed once at least this many rows are buffered.
    pub shard_rows: usize,
    /// What produces the store.
    pub source: Source,
    /// Rows carry token ids.
    pub with_token_ids: bool,
    /// Rows carry document ids.
    pub with_doc_ids: bool,
    /// Rows carry positions.
    pub with_positions: bool,
}

/// Rows handed to [`StoreWriter::push`]; the optional columns must match the spec.
#[derive(Clone, Copy, Debug, Default)]
pub struct RowBatch<'a> {
    /// [n, d] row-major.
    pub acts: &'a [f32],
    /// [n].
    pub token_ids: Option<&'a [u32]>,
    /// [n].
    pub doc_ids: Option<&'a [u32]>,
    /// [n].
    pub positions: Option<&'a [u32]>,
}

/// Buffers rows and writes shards plus the manifest.
pub struct StoreWriter {
    dir: PathBuf,
    manifest: Manifest,
    shard_rows: usize,
    acts: Vec<f32>,
    token_ids: Vec<u32>,
    doc_ids: Vec<u32>,
    positions: Vec<u32>,
    /// The cursor of the last push, written with the next shard or by `finish`.
    last_cursor: Option<serde_json::Value>,
}

impl StoreWriter {
    /// Starts a new store in `dir` (created if missing). Fails if `dir` already holds a store.
    /// Writes an incomplete manifest at once, so an unwritable folder fails here.
    pub fn create(dir: &Path, spec: StoreSpec) -> Result<StoreWriter, StoreError> {
        if spec.d == 0 {
            return Err(StoreError::BadRows("d must be positive".into()));
        }
        if dir.join(crate::MANIFEST_FILE).exists() {
            return Err(StoreError::AlreadyExists {
                dir: dir.to_path_buf(),
            });
        }
        fs::create_dir_all(dir).map_err(|err| StoreError::Io {
            path: dir.to_path_buf(),
            err,
        })?;
        let manifest = Manifest {
            format: MANIFEST_FORMAT.to_string(),
            version: MANIFEST_VERSION,
            d: spec.d,
            dtype: spec.dtype,
            rows: 0,
            eval_rows: 0,
            shards: Vec::new(),
            has_token_ids: spec.with_token_ids,
            has_doc_ids: spec.with_doc_ids,
            has_positions: spec.with_positions,
            source: spec.source,
            complete: false,
            cursor: None,
        };
        manifest.write(dir)?;
        Ok(StoreWriter::with_manifest(dir, manifest, spec.shard_rows))
    }

    /// Reopens an incomplete store to continue writing after its last flushed shard. Files left by
    /// the interrupted writer (temporary files, a shard written but not yet in the manifest) are removed.
    pub fn resume(dir: &Path, shard_rows: usize) -> Result<StoreWriter, StoreError> {
        let manifest = Manifest::read(dir)?;
        if manifest.complete {
            return Err(StoreError::AlreadyComplete {
                dir: dir.to_path_buf(),
            });
        }
        let entries = fs::read_dir(dir).map_err(|err| StoreError::Io {
            path: dir.to_path_buf(),
            err,
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stray_shard =
                name.starts_with("shard-") && !manifest.shards.iter().any(|s| s.file == name);
            if stray_shard || name.ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(StoreWriter::with_manifest(dir, manifest, shard_rows))
    }

    fn with_manifest(dir: &Path, manifest: Manifest, shard_rows: usize) -> StoreWriter {
        StoreWriter {
            dir: dir.to_path_buf(),
            manifest,
            shard_rows: shard_rows.max(1),
            acts: Vec::new(),
            token_ids: Vec::new(),
            doc_ids: Vec::new(),
            positions: Vec::new(),
            last_cursor: None,
        }
    }

    /// Rows per shard file.
    pub fn shard_rows(&self) -> usize {
        self.shard_rows
    }

    /// The manifest as last written.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The producer's position after the last flushed shard (None before the first).
    pub fn cursor(&self) -> Option<&serde_json::Value> {
        self.manifest.cursor.as_ref()
    }

    /// Rows flushed to disk so far.
    pub fn rows(&self) -> u64 {
        self.manifest.rows
    }

    /// Appends rows. Once at least `shard_rows` rows are buffered they are flushed as one shard and the
    /// manifest is rewritten with `cursor`, the producer's position after this batch. NaN / Inf are rejected.
    pub fn push(
        &mut self,
        batch: RowBatch<'_>,
        cursor: Option<serde_json::Value>,
    ) -> Result<(), StoreError> {
        let d = self.manifest.d;
        if !batch.acts.len().is_multiple_of(d) {
            return Err(StoreError::BadRows(format!(
                "{} values is not a whole number of rows of width {d}",
                batch.acts.len()
            )));
        }
        let n = batch.acts.len() / d;
        if let Some((row, col, value)) = first_non_finite(batch.acts, d) {
            return Err(StoreError::BadRows(format!(
                "non-finite activation {value} at row {row}, column {col} of the batch"
            )));
        }
        let m = &self.manifest;
        for (name, want, col, buf) in [
            (
                TOKEN_IDS,
                m.has_token_ids,
                batch.token_ids,
                &mut self.token_ids,
            ),
            (DOC_IDS, m.has_doc_ids, batch.doc_ids, &mut self.doc_ids),
            (
                POSITIONS,
                m.has_positions,
                batch.positions,
                &mut self.positions,
            ),
        ] {
            match (want, col) {
                (true, Some(v)) if v.len() == n => buf.extend_from_slice(v),
                (false, None) => {}
                (true, Some(v)) => {
                    return Err(StoreError::BadRows(format!(
                        "{name} has {} rows, acts {n}",
                        v.len()
                    )))
                }
                (true, None) => return Err(StoreError::BadRows(format!("{name} missing"))),
                (false, Some(_)) => {
                    return Err(StoreError::BadRows(format!(
                        "{name} given but not in the spec"
                    )))
                }
            }
        }
        self.acts.extend_from_slice(batch.acts);
        self.last_cursor = cursor.clone();
        if self.buffered_rows() >= self.shard_rows {
            self.flush()?;
            self.manifest.cursor = cursor;
            self.manifest.write(&self.dir)?;
        }
        Ok(())
    }

    fn buffered_rows(&self) -> usize {
        self.acts.len() / self.manifest.d
    }

    /// Writes the buffered rows as the next shard (atomically) and records it in the in-memory manifest.
    fn flush(&mut self) -> Result<(), StoreError> {
        let n = self.buffered_rows();
        if n == 0 {
            return Ok(());
        }
        let m = &self.manifest;
        let mut columns: Vec<(&'static str, &[u32])> = Vec::new();
        if m.has_token_ids {
            columns.push((TOKEN_IDS, &self.token_ids));
        }
        if m.has_doc_ids {
            columns.push((DOC_IDS, &self.doc_ids));
        }
        if m.has_positions {
            columns.push((POSITIONS, &self.positions));
        }
        let bytes = encode(m.dtype, n, m.d, &self.acts, &columns)?;
        let file = format!("shard-{:05}.safetensors", m.shards.len());
        atomic_write(&self.dir.join(&file), &bytes)?;
        self.manifest.shards.push(ShardMeta {
            file,
            rows: n as u64,
        });
        self.manifest.rows += n as u64;
        self.acts.clear();
        self.token_ids.clear();
        self.doc_ids.clear();
        self.positions.clear();
        Ok(())
    }

    /// Flushes the remaining rows, sets the held-out split to the last `eval_rows` rows (clamped to the
    /// store's size) and marks the store complete; the manifest keeps the cursor of the last push (where
    /// the producer ended, e.g. where a stream over the rest of a corpus starts).
    pub fn finish(mut self, eval_rows: u64) -> Result<Manifest, StoreError> {
        self.flush()?;
        if let Some(c) = self.last_cursor.take() {
            self.manifest.cursor = Some(c);
        }
        self.manifest.eval_rows = eval_rows.min(self.manifest.rows);
        self.manifest.complete = true;
        self.manifest.write(&self.dir)?;
        Ok(self.manifest)
    }
}
