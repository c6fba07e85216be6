//! Typed field access on a foreign `cfg.json` object, with errors that name the file and the key.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::SaeError;

/// A parsed JSON object plus the file it came from.
pub struct CfgObject {
    /// The file, for messages.
    pub path: PathBuf,
    /// The top-level object.
    pub map: Map<String, Value>,
}

impl CfgObject {
    /// Reads and parses `path`, which must hold a JSON object.
    pub fn read(path: &Path) -> Result<CfgObject, SaeError> {
        let text = std::fs::read_to_string(path).map_err(|e| SaeError::reading(path, e))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| SaeError::BadConfig {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        match value {
            Value::Object(map) => Ok(CfgObject {
                path: path.to_path_buf(),
                map,
            }),
            _ => Err(SaeError::BadConfig {
                path: path.to_path_buf(),
                msg: "expected a JSON object".into(),
            }),
        }
    }

    /// A config error about this file.
    pub fn bad(&self, msg: impl Into<String>) -> SaeError {
        SaeError::BadConfig {
            path: self.path.clone(),
            msg: msg.into(),
        }
    }

    /// The value of `key` unless absent or null.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// An optional non-negative integer field.
    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>, SaeError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(|n| Some(n as usize))
                .ok_or_else(|| self.bad(format!("{key} must be a non-negative integer, got {v}"))),
        }
    }

    /// A required non-negative integer field.
    pub fn usize(&self, key: &str) -> Result<usize, SaeError> {
        self.opt_usize(key)?
            .ok_or_else(|| self.bad(format!("missing field {key}")))
    }

    /// An optional boolean field.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, SaeError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.bad(format!("{key} must be true or false, got {v}"))),
        }
    }

    /// An optional string field.
    pub fn opt_str(&self, key: &str) -> Result<Option<String>, SaeError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(|s| Some(s.to_string()))
                .ok_or_else(|| self.bad(format!("{key} must be a string, got {v}"))),
        }
    }
}
