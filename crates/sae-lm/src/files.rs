//! Which files of a model folder (local or a hub snapshot) hold its config, weights and tokenizer.

use std::path::{Path, PathBuf};

use crate::error::{LmError, Result};

/// The files a model is loaded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelFiles {
    /// Hugging Face layout: config.json, safetensors weights (one file or the shards of an index), tokenizer.json.
    Safetensors {
        /// config.json.
        config: PathBuf,
        /// The weight files, in a fixed order.
        weights: Vec<PathBuf>,
        /// tokenizer.json, when present.
        tokenizer: Option<PathBuf>,
    },
    /// One GGUF file holding config metadata, (quantized) weights and the tokenizer.
    Gguf {
        /// The .gguf file.
        file: PathBuf,
    },
}

/// The repo-relative names a safetensors model needs, given the name list of its repo (or folder).
/// Returns `None` when the list holds no usable model.
pub fn select_files(
    names: &[String],
    read_index: impl Fn(&str) -> Option<Vec<String>>,
) -> Option<Vec<String>> {
    let has = |n: &str| names.iter().any(|x| x == n);
    if has("config.json") {
        let mut out = vec!["config.json".to_string()];
        if has("model.safetensors") {
            out.push("model.safetensors".into());
        } else if has("model.safetensors.index.json") {
            out.push("model.safetensors.index.json".into());
            out.extend(read_index("model.safetensors.index.json")?);
        } else {
            return select_gguf(names);
        }
        for extra in [
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
        ] {
            if has(extra) {
                out.push(extra.into());
            }
        }
        return Some(out);
    }
    select_gguf(names)
}

/// The GGUF file to use: the first by name, preferring unquantized and 8-bit files.
fn select_gguf(names: &[String]) -> Option<Vec<String>> {
    let mut ggufs: Vec<&String> = names.iter().filter(|n| n.ends_with(".gguf")).collect();
    ggufs.sort_by_key(|n| {
        let lower = n.to_ascii_lowercase();
        let rank = ["f32", "f16", "bf16", "q8_0"]
            .iter()
            .position(|q| lower.contains(q))
            .unwrap_or(4);
        (rank, (*n).clone())
    });
    ggufs.first().map(|n| vec![(*n).clone()])
}

/// The shard file names listed in a `model.safetensors.index.json`, sorted and deduplicated.
pub fn index_shards(index: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index).map_err(|source| LmError::Io {
        path: index.to_path_buf(),
        source,
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| LmError::BadWeights {
            path: index.to_path_buf(),
            message: e.to_string(),
        })?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| LmError::BadWeights {
            path: index.to_path_buf(),
            message: "no `weight_map` object".into(),
        })?;
    let mut files: Vec<String> = map
        .values()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}

impl ModelFiles {
    /// Finds the model files in a folder (a local model folder or a hub snapshot).
    pub fn find(dir: &Path) -> Result<ModelFiles> {
        let entries = std::fs::read_dir(dir).map_err(|source| LmError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        let selected =
            select_files(&names, |idx| index_shards(&dir.join(idx)).ok()).ok_or_else(|| {
                LmError::NoWeights {
                    dir: dir.to_path_buf(),
                }
            })?;
        Ok(ModelFiles::from_selected(dir, &selected))
    }

    /// Builds the file set from names chosen by [`select_files`], all inside `dir`.
    pub fn from_selected(dir: &Path, selected: &[String]) -> ModelFiles {
        if selected.len() == 1 && selected[0].ends_with(".gguf") {
            return ModelFiles::Gguf {
                file: dir.join(&selected[0]),
            };
        }
        let weights = selected
            .iter()
            .filter(|n| n.ends_with(".safetensors"))
            .map(|n| dir.join(n))
            .collect();
        let tokenizer = selected
            .iter()
            .find(|n| *n == "tokenizer.json")
            .map(|n| dir.join(n));
        ModelFiles::Safetensors {
            config: dir.join("config.json"),
            weights,
            tokenizer,
        }
    }

    /// The tokenizer's source file (tokenizer.json or the GGUF file), if any.
    pub fn tokenizer_path(&self) -> Option<&Path> {
        match self {
            ModelFiles::Safetensors { tokenizer, .. } => tokenizer.as_deref(),
            ModelFiles::Gguf { file } => Some(file),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn picks_safetensors_then_index_then_gguf() {
        let none = |_: &str| None;
        let got = select_files(
            &names(&[
                "config.json",
                "model.safetensors",
                "tokenizer.json",
                "README.md",
            ]),
            none,
        );
        assert_eq!(
            got,
            Some(names(&[
                "config.json",
                "model.safetensors",
                "tokenizer.json"
            ]))
        );
        let shards = |_: &str| Some(names(&["a.safetensors", "b.safetensors"]));
        let got = select_files(
            &names(&["config.json", "model.safetensors.index.json"]),
            shards,
        );
        assert_eq!(
            got,
            Some(names(&[
                "config.json",
                "model.safetensors.index.json",
                "a.safetensors",
                "b.safetensors"
            ]))
        );
        let got = select_files(&names(&["m.Q4_1.gguf", "m.Q8_0.gguf", "README.md"]), none);
        assert_eq!(got, Some(names(&["m.Q8_0.gguf"])));
        assert_eq!(
            select_files(&names(&["config.json", "pytorch_model.bin"]), none),
            None
        );
    }
}
