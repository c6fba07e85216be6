//! One shard file: safetensors with `acts` [rows, d] and optional u32 columns [rows].

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::{DType, StoreError};

/// Tensor names inside a shard.
pub(crate) const ACTS: &str = "acts";
pub(crate) const TOKEN_IDS: &str = "token_ids";
pub(crate) const DOC_IDS: &str = "doc_ids";
pub(crate) const POSITIONS: &str = "positions";

/// Rows of one shard decoded to f32 / u32.
pub(crate) struct ShardRows {
    pub acts: Vec<f32>,
    pub token_ids: Option<Vec<u32>>,
    pub doc_ids: Option<Vec<u32>>,
    pub positions: Option<Vec<u32>>,
}

/// Serializes rows into safetensors bytes. `acts` is [n, d] row-major f32, stored as `dtype`.
pub(crate) fn encode(
    dtype: DType,
    n: usize,
    d: usize,
    acts: &[f32],
    columns: &[(&'static str, &[u32])],
) -> Result<Vec<u8>, StoreError> {
    let act_bytes: Vec<u8> = match dtype {
        DType::F32 => acts.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::F16 => acts
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect(),
        DType::BF16 => acts
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect(),
    };
    let st_dtype = match dtype {
        DType::F32 => Dtype::F32,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
    };
    let col_bytes: Vec<(&str, Vec<u8>)> = columns
        .iter()
        .map(|(name, v)| (*name, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let bad = |e: safetensors::SafeTensorError| StoreError::BadRows(e.to_string());
    let mut views = vec![(
        ACTS,
        TensorView::new(st_dtype, vec![n, d], &act_bytes).map_err(bad)?,
    )];
    for (name, bytes) in &col_bytes {
        views.push((
            name,
            TensorView::new(Dtype::U32, vec![n], bytes).map_err(bad)?,
        ));
    }
    safetensors::serialize(views, None::<HashMap<String, String>>).map_err(bad)
}

/// A memory-mapped shard, checked against the manifest.
pub(crate) struct ShardFile {
    mmap: memmap2::Mmap,
}

impl ShardFile {
    /// Maps the file and checks that its header parses and its size matches (catches truncation),
    /// and that `acts` is [rows, d] of `dtype` and every listed column is u32 [rows].
    pub fn open(
        path: &Path,
        rows: u64,
        d: usize,
        dtype: DType,
        columns: &[&str],
    ) -> Result<ShardFile, StoreError> {
        let file = File::open(path).map_err(|err| StoreError::Io {
            path: path.to_path_buf(),
            err,
        })?;
        // SAFETY: the store's files are written once (atomically) and never modified in place.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|err| StoreError::Io {
            path: path.to_path_buf(),
            err,
        })?;
        let shard = ShardFile { mmap };
        let bad = |msg: String| StoreError::BadShard {
            path: path.to_path_buf(),
            msg,
        };
        let st = shard.tensors(path)?;
        let want_acts = match dtype {
            DType::F32 => Dtype::F32,
            DType::F16 => Dtype::F16,
            DType::BF16 => Dtype::BF16,
        };
        let acts = st
            .tensor(ACTS)
            .map_err(|e| bad(format!("tensor `acts`: {e}")))?;
        if acts.dtype() != want_acts || acts.shape() != [rows as usize, d] {
            return Err(bad(format!(
                "`acts` is {:?} {:?}, manifest says {:?} [{rows}, {d}]",
                acts.dtype(),
                acts.shape(),
                dtype
            )));
        }
        for name in columns {
            let t = st
                .tensor(name)
                .map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
            if t.dtype() != Dtype::U32 || t.shape() != [rows as usize] {
                return Err(bad(format!(
                    "`{name}` is {:?} {:?}, expected U32 [{rows}]",
                    t.dtype(),
                    t.shape()
                )));
            }
        }
        Ok(shard)
    }

    fn tensors(&self, path: &Path) -> Result<SafeTensors<'_>, StoreError> {
        SafeTensors::deserialize(&self.mmap).map_err(|e| StoreError::BadShard {
            path: path.to_path_buf(),
            msg: format!("{e} (file of {} bytes; truncated?)", self.mmap.len()),
        })
    }

    /// Decodes rows `lo..hi` (shard-relative) of `acts` and the listed columns.
    pub fn read(
        &self,
        path: &Path,
        d: usize,
        lo: usize,
        hi: usize,
        columns: [bool; 3],
    ) -> Result<ShardRows, StoreError> {
        let st = self.tensors(path)?;
        let acts_view = st.tensor(ACTS).map_err(|e| StoreError::BadShard {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        let data = acts_view.data();
        let acts = match acts_view.dtype() {
            Dtype::F32 => data[lo * d * 4..hi * d * 4]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => data[lo * d * 2..hi * d * 2]
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            _ => data[lo * d * 2..hi * d * 2]
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        };
        Ok(ShardRows {
            acts,
            ..Self::columns(&st, path, lo, hi, columns)?
        })
    }

    /// Decodes rows `lo..hi` (shard-relative) of the listed id columns only (`acts` left empty:
    /// what a row-alignment check reads).
    pub fn read_ids(
        &self,
        path: &Path,
        lo: usize,
        hi: usize,
        columns: [bool; 3],
    ) -> Result<ShardRows, StoreError> {
        Self::columns(&self.tensors(path)?, path, lo, hi, columns)
    }

    fn columns(
        st: &SafeTensors<'_>,
        path: &Path,
        lo: usize,
        hi: usize,
        columns: [bool; 3],
    ) -> Result<ShardRows, StoreError> {
        let col = |name: &str, wanted: bool| -> Result<Option<Vec<u32>>, StoreError> {
            if !wanted {
                return Ok(None);
            }
            let t = st.tensor(name).map_err(|e| StoreError::BadShard {
                path: path.to_path_buf(),
                msg: e.to_string(),
            })?;
            Ok(Some(
                t.data()[lo * 4..hi * 4]
                    .chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            ))
        };
        Ok(ShardRows {
            acts: Vec::new(),
            token_ids: col(TOKEN_IDS, columns[0])?,
            doc_ids: col(DOC_IDS, columns[1])?,
            positions: col(POSITIONS, columns[2])?,
        })
    }
}

/// Returns the first non-finite value in `acts` ([n, d]) as (row, col, value).
pub(crate) fn first_non_finite(acts: &[f32], d: usize) -> Option<(usize, usize, f32)> {
    acts.iter()
        .position(|v| !v.is_finite())
        .map(|i| (i / d, i % d, acts[i]))
}
