//! `hierarchy.json`: the feature hierarchy of a synthetic store (`sae synth --parents`) and which
//! features fire in each held-out row, the ground truth the absorption score needs.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{atomic_write, StoreError};

/// File name of the hierarchy ground truth inside a store folder.
pub const HIERARCHY_FILE: &str = "hierarchy.json";

/// One parent feature and the features that always bring it along.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParentFeature {
    /// The parent's index among the true features.
    pub feature: u32,
    /// Its children: whenever one fires, the parent fires too.
    pub children: Vec<u32>,
}

/// The hierarchy of a store's true features and the firing features of its held-out rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hierarchy {
    /// Every parent with its children.
    pub parents: Vec<ParentFeature>,
    /// For each held-out row in order, the features that fire in it (sorted); empty until the
    /// store is complete.
    pub eval_firing: Vec<Vec<u32>>,
}

impl Hierarchy {
    /// Reads `dir/hierarchy.json`: `Ok(None)` when the store has none.
    pub fn read(dir: &Path) -> Result<Option<Hierarchy>, StoreError> {
        let path = dir.join(HIERARCHY_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(StoreError::Io { path, err }),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StoreError::BadFile {
                path,
                msg: e.to_string(),
            })
    }

    /// Writes `dir/hierarchy.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<(), StoreError> {
        let text = serde_json::to_string(self).expect("a hierarchy serializes");
        atomic_write(&dir.join(HIERARCHY_FILE), text.as_bytes())
    }
}
