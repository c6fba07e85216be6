//! `manifest.json`: what a store holds (width, dtype, rows, shards) and what produced it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{atomic_write, StoreError};

/// File name of the manifest inside a store folder.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Value of the manifest's `format` field.
pub const MANIFEST_FORMAT: &str = "sae-activation-store";
/// Version of the manifest layout this build writes and reads.
pub const MANIFEST_VERSION: u32 = 1;

/// Element type of the stored activations (they are always f32 once read).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    F16,
    BF16,
}

impl DType {
    /// Bytes per element on disk.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
    }
}

/// One shard file of the store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardMeta {
    /// File name inside the store folder.
    pub file: String,
    /// Rows in this shard.
    pub rows: u64,
}

/// Parameters of the synthetic superposition generator that produced a store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthSource {
    /// Number of true features.
    pub features: usize,
    /// Dimension of the activations.
    pub dim: usize,
    /// Mean firing probability of a feature.
    pub firing_prob: f64,
    /// Zipf exponent of the firing frequencies across features, if any.
    pub zipf_exponent: Option<f64>,
    /// Number of groups of correlated features, if any.
    pub correlated_groups: Option<usize>,
    /// Number of samples generated.
    pub samples: u64,
    /// Seed of the generator.
    pub seed: u64,
    /// Distribution of a firing feature's magnitude, e.g. "uniform(0,1)".
    pub magnitude: String,
}

/// What a harvest from a transformer recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HarvestSource {
    /// Model id on the Hugging Face hub, or a local folder.
    pub model_id: String,
    /// Revision (commit, branch or tag) the weights came from.
    pub revision: String,
    /// Hook point name, e.g. `blocks.3.hook_resid_post`.
    pub hook: String,
    /// Context length in tokens.
    pub ctx_len: usize,
    /// Corpus files, in the order they were read.
    pub corpus: Vec<String>,
    /// Tokenizer used (file name or description).
    pub tokenizer: String,
    /// Whether special tokens (BOS, CLS, SEP, padding) were stored.
    pub keep_special: bool,
    /// Dtype the model ran in.
    pub dtype: String,
    /// Positions where a hook's row norm exceeded this multiple of the batch's median norm at that hook
    /// (attention sinks) were left out of every store; `None`: all rows kept.
    #[serde(default)]
    pub max_norm_ratio: Option<f32>,
}

/// One file `sae import` read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportedFile {
    /// The path as given.
    pub path: String,
    /// The tensor read, for a safetensors file.
    pub key: Option<String>,
    /// Element type in the file, e.g. "f16" or "<f4".
    pub dtype: String,
    /// Shape in the file (leading axes are flattened into rows).
    pub shape: Vec<usize>,
    /// Size of the file in bytes.
    pub bytes: u64,
}

/// What `sae import` read: activations computed elsewhere.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportSource {
    /// Activation files, in row order.
    pub files: Vec<ImportedFile>,
    /// Token id files, one per activation file, when given.
    pub token_ids: Vec<ImportedFile>,
    /// The model the activations came from, when the user said.
    pub model_id: Option<String>,
    /// The hook point, when the user said.
    pub hook: Option<String>,
}

/// What produced a store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    /// `sae synth`.
    Synthetic(SynthSource),
    /// `sae harvest`.
    Harvest(HarvestSource),
    /// `sae import`.
    Import(ImportSource),
}

/// Contents of `manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// Layout version, [`MANIFEST_VERSION`].
    pub version: u32,
    /// Width of one activation row.
    pub d: usize,
    /// On-disk element type of `acts`.
    pub dtype: DType,
    /// Total rows over all shards.
    pub rows: u64,
    /// The last `eval_rows` rows form the held-out split.
    pub eval_rows: u64,
    /// Shards in row order.
    pub shards: Vec<ShardMeta>,
    /// Shards hold `token_ids` [rows] (u32).
    pub has_token_ids: bool,
    /// Shards hold `doc_ids` [rows] (u32).
    pub has_doc_ids: bool,
    /// Shards hold `positions` [rows] (u32): the token's position in its context.
    pub has_positions: bool,
    /// What produced the store.
    pub source: Source,
    /// False while the store is being written.
    pub complete: bool,
    /// The producer's position after the last shard, for resuming.
    pub cursor: Option<serde_json::Value>,
}

impl Manifest {
    /// Reads and checks `dir/manifest.json`.
    pub fn read(dir: &Path) -> Result<Manifest, StoreError> {
        let path = dir.join(MANIFEST_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::Missing {
                    dir: dir.to_path_buf(),
                })
            }
            Err(err) => return Err(StoreError::Io { path, err }),
        };
        let bad = |msg: String| StoreError::BadManifest {
            path: path.clone(),
            msg,
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
        if version != MANIFEST_VERSION {
            return Err(StoreError::UnsupportedVersion {
                path,
                found: version,
                supported: MANIFEST_VERSION,
            });
        }
        let m: Manifest = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
        if m.format != MANIFEST_FORMAT {
            return Err(bad(format!(
                "format is {:?}, expected {MANIFEST_FORMAT:?}",
                m.format
            )));
        }
        if m.d == 0 {
            return Err(bad("d is 0".into()));
        }
        let sum: u64 = m.shards.iter().map(|s| s.rows).sum();
        if sum != m.rows {
            return Err(bad(format!("shards hold {sum} rows but rows = {}", m.rows)));
        }
        if m.eval_rows > m.rows {
            return Err(bad(format!("eval_rows {} > rows {}", m.eval_rows, m.rows)));
        }
        for s in &m.shards {
            if s.file.contains('/') || s.file.contains('\\') || s.file.starts_with('.') {
                return Err(bad(format!(
                    "shard file name {:?} is not a plain name",
                    s.file
                )));
            }
        }
        Ok(m)
    }

    /// Writes `dir/manifest.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<(), StoreError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| StoreError::BadManifest {
            path: dir.join(MANIFEST_FILE),
            msg: e.to_string(),
        })?;
        atomic_write(&dir.join(MANIFEST_FILE), text.as_bytes())
    }
}
