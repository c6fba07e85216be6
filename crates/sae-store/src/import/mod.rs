//! `sae import`: activations computed elsewhere (`.npy` / `.safetensors` files, every axis but
//! the last flattened into rows) into a store, with optional token ids, streamed a block of rows
//! at a time: memory stays at one shard plus one block whatever the files' size. The manifest
//! records the source files; an interrupted import resumes from the last shard written.

mod array;
mod header;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{
    DType, ImportSource, ImportedFile, Manifest, RowBatch, Source, StoreError, StoreSpec,
    StoreWriter,
};
use array::ArrayFile;

/// Everything that can go wrong importing activations.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Reading a file failed.
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    /// A file is not a readable array of rows.
    #[error("{}: {msg}", path.display())]
    BadFile { path: PathBuf, msg: String },
    /// A safetensors file holds several tensors and none was named.
    #[error("{} holds several tensors; choose one with --key: {}", path.display(), keys.join(", "))]
    KeyRequired { path: PathBuf, keys: Vec<String> },
    /// The named tensor is not in the file.
    #[error("{} has no tensor {key:?}; it has: {}", path.display(), keys.join(", "))]
    NoSuchKey {
        path: PathBuf,
        key: String,
        keys: Vec<String>,
    },
    /// Two inputs have rows of different widths.
    #[error("{} has rows of width {found}, but {} has width {d}: every input must have the same width", path.display(), first.display())]
    MixedWidths {
        first: PathBuf,
        d: usize,
        path: PathBuf,
        found: usize,
    },
    /// An activation is NaN or infinite.
    #[error("{}: non-finite activation {value} at row {row}, column {col}", path.display())]
    NonFinite {
        path: PathBuf,
        row: u64,
        col: usize,
        value: f32,
    },
    /// The token ids do not line up with the activations.
    #[error("token ids: {0}")]
    TokenIds(String),
    /// The import settings are inconsistent (no inputs, a bad held-out fraction, ...).
    #[error("{0}")]
    Invalid(String),
    /// `out` holds an interrupted import of other files.
    #[error("{} holds an interrupted import of other files; remove it or import into another folder", dir.display())]
    OtherImport { dir: PathBuf },
    /// Writing the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The held-out split of an imported store: its last rows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HeldOut {
    /// This fraction of all rows (rounded).
    Fraction(f64),
    /// Exactly this many rows (at most all of them).
    Rows(u64),
}

/// What to import.
#[derive(Clone, Debug)]
pub struct ImportSpec {
    /// Activation files, in row order.
    pub inputs: Vec<PathBuf>,
    /// The tensor to read from safetensors inputs (required when a file holds several).
    pub key: Option<String>,
    /// Token id files, one per input (or none); a safetensors input can also name its own
    /// token id tensor with `token_ids_key` instead.
    pub token_ids: Vec<PathBuf>,
    /// The token id tensor: in each `token_ids` file, or (without them) in each input.
    pub token_ids_key: Option<String>,
    /// Element type of the store; `None`: f16 or bf16 when every input is, else f32.
    pub dtype: Option<DType>,
    /// Rows per shard file.
    pub shard_rows: usize,
    /// The held-out split.
    pub held_out: HeldOut,
    /// The model the activations came from, recorded in the manifest.
    pub model_id: Option<String>,
    /// The hook point, recorded in the manifest.
    pub hook: Option<String>,
    /// Continue the interrupted import of the same files in the output folder.
    pub resume: bool,
}

/// Where an import stands after a shard: the next input file and row.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Cursor {
    file: usize,
    row: u64,
}

/// Rows read per block: about 8 MiB of f32.
fn block_rows(d: usize) -> usize {
    ((8usize << 20) / (4 * d)).max(1)
}

fn record(a: &ArrayFile) -> ImportedFile {
    ImportedFile {
        path: a.path.display().to_string(),
        key: a.key.clone(),
        dtype: a.layout.dtype.clone(),
        shape: a.layout.shape.clone(),
        bytes: a.bytes,
    }
}

/// Opens every input and token id file and checks that they line up.
fn open_all(spec: &ImportSpec) -> Result<(Vec<ArrayFile>, Vec<ArrayFile>), ImportError> {
    if spec.inputs.is_empty() {
        return Err(ImportError::Invalid("no input files".into()));
    }
    let mut inputs: Vec<ArrayFile> = Vec::new();
    for p in &spec.inputs {
        let a = ArrayFile::open(p, spec.key.as_deref(), false)?;
        if !a.layout.elem.is_float() || a.layout.shape.len() < 2 || a.width == 0 {
            return Err(ImportError::BadFile {
                path: p.clone(),
                msg: format!(
                    "expected floating-point activations of shape [rows, d] (or [.., d]), found {} {:?}",
                    a.layout.dtype, a.layout.shape
                ),
            });
        }
        if let Some(first) = inputs.first() {
            if first.width != a.width {
                return Err(ImportError::MixedWidths {
                    first: first.path.clone(),
                    d: first.width,
                    path: p.clone(),
                    found: a.width,
                });
            }
        }
        inputs.push(a);
    }
    let ids = match (&spec.token_ids[..], &spec.token_ids_key) {
        ([], None) => Vec::new(),
        ([], Some(k)) => spec
            .inputs
            .iter()
            .map(|p| ArrayFile::open(p, Some(k), true))
            .collect::<Result<_, _>>()?,
        (files, key) if files.len() == inputs.len() => files
            .iter()
            .map(|p| ArrayFile::open(p, key.as_deref(), true))
            .collect::<Result<_, _>>()?,
        (files, _) => {
            return Err(ImportError::TokenIds(format!(
                "{} token id files for {} inputs: give one per input",
                files.len(),
                inputs.len()
            )))
        }
    };
    for (a, t) in inputs.iter().zip(&ids) {
        if t.rows != a.rows || t.layout.elem.is_float() {
            return Err(ImportError::TokenIds(format!(
                "{} holds {} {} values for the {} rows of {}",
                t.path.display(),
                t.rows,
                t.layout.dtype,
                a.rows,
                a.path.display()
            )));
        }
    }
    Ok((inputs, ids))
}

/// The store's element type: the given one, else the inputs' half type when they all share it.
fn store_dtype(spec: &ImportSpec, inputs: &[ArrayFile]) -> DType {
    use header::Elem;
    spec.dtype.unwrap_or_else(|| {
        if inputs.iter().all(|a| a.layout.elem == Elem::F16) {
            DType::F16
        } else if inputs.iter().all(|a| a.layout.elem == Elem::BF16) {
            DType::BF16
        } else {
            DType::F32
        }
    })
}

/// Imports `spec` into a new store at `out` (or, with `spec.resume`, continues an interrupted
/// import of the same files there). `progress` is told the rows written so far after each block.
pub fn import(
    out: &Path,
    spec: &ImportSpec,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Manifest, ImportError> {
    let (inputs, ids) = open_all(spec)?;
    let total: u64 = inputs.iter().map(|a| a.rows).sum();
    let eval_rows = match spec.held_out {
        HeldOut::Fraction(f) if (0.0..=1.0).contains(&f) => (total as f64 * f).round() as u64,
        HeldOut::Fraction(f) => {
            return Err(ImportError::Invalid(format!(
                "held-out fraction {f} is not in [0, 1]"
            )))
        }
        HeldOut::Rows(n) => n.min(total),
    };
    let source = Source::Import(ImportSource {
        files: inputs.iter().map(record).collect(),
        token_ids: ids.iter().map(record).collect(),
        model_id: spec.model_id.clone(),
        hook: spec.hook.clone(),
    });
    let shard_rows = spec.shard_rows.max(1);
    let (mut writer, mut at) = open_writer(
        spec.resume,
        out,
        &inputs[0],
        !ids.is_empty(),
        store_dtype(spec, &inputs),
        shard_rows,
        source,
    )?;
    let mut written = writer.manifest().rows;
    while at.file < inputs.len() {
        let current = at.file;
        at = copy_file(
            &mut writer,
            &inputs[current],
            ids.get(current),
            at,
            &mut written,
            &mut |w| progress(w, total),
        )?;
        if at.file == current {
            at = Cursor {
                file: current + 1,
                row: 0,
            };
        }
    }
    Ok(writer.finish(eval_rows)?)
}

/// Copies the rows of `a` from `at.row` on (with token ids from `ids`) into `writer`, in blocks
/// that end on shard boundaries, so a resumed import restarts exactly after the last shard.
/// Returns the cursor after the last block.
fn copy_file(
    writer: &mut StoreWriter,
    a: &ArrayFile,
    ids: Option<&ArrayFile>,
    mut at: Cursor,
    written: &mut u64,
    progress: &mut dyn FnMut(u64),
) -> Result<Cursor, ImportError> {
    let (d, shard_rows) = (a.width, writer.shard_rows());
    let mut rows = a.rows_from(at.row)?;
    let mut tok_rows = match ids {
        Some(t) => Some(t.rows_from(at.row)?),
        None => None,
    };
    let (mut acts, mut toks) = (Vec::new(), Vec::new());
    loop {
        let want = block_rows(d).min(shard_rows - (*written % shard_rows as u64) as usize);
        acts.clear();
        toks.clear();
        let start = rows.position();
        let n = rows.read_f32(want, &mut acts)?;
        if n == 0 {
            return Ok(at);
        }
        if let Some(i) = acts.iter().position(|v| !v.is_finite()) {
            return Err(ImportError::NonFinite {
                path: a.path.clone(),
                row: start + (i / d) as u64,
                col: i % d,
                value: acts[i],
            });
        }
        if let Some(t) = tok_rows.as_mut() {
            t.read_u32(n, &mut toks)?;
        }
        at = match rows.position() == a.rows {
            true => Cursor {
                file: at.file + 1,
                row: 0,
            },
            false => Cursor {
                file: at.file,
                row: rows.position(),
            },
        };
        let batch = RowBatch {
            acts: &acts,
            token_ids: tok_rows.is_some().then_some(&toks[..]),
            ..RowBatch::default()
        };
        writer.push(
            batch,
            Some(serde_json::to_value(at).expect("cursor serializes")),
        )?;
        *written += n as u64;
        progress(*written);
    }
}

/// A new writer, or the interrupted one in `out` with its cursor when it imports the same files.
fn open_writer(
    resume: bool,
    out: &Path,
    first: &ArrayFile,
    with_token_ids: bool,
    dtype: DType,
    shard_rows: usize,
    source: Source,
) -> Result<(StoreWriter, Cursor), ImportError> {
    match Manifest::read(out) {
        Ok(m) if resume && !m.complete => {
            if m.source != source || m.dtype != dtype || m.d != first.width {
                return Err(ImportError::OtherImport {
                    dir: out.to_path_buf(),
                });
            }
            let writer = StoreWriter::resume(out, shard_rows)?;
            let at = match writer.cursor() {
                Some(c) => {
                    serde_json::from_value(c.clone()).map_err(|_| ImportError::OtherImport {
                        dir: out.to_path_buf(),
                    })?
                }
                None => Cursor { file: 0, row: 0 },
            };
            Ok((writer, at))
        }
        _ => {
            let spec = StoreSpec {
                d: first.width,
                dtype,
                shard_rows,
                source,
                with_token_ids,
                with_doc_ids: false,
                with_positions: false,
            };
            Ok((StoreWriter::create(out, spec)?, Cursor { file: 0, row: 0 }))
        }
    }
}
