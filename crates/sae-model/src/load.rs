//! Opening an SAE folder: tells SAELens from sparsify layouts and dispatches, and finds one
//! hook's SAE inside a folder of several (sparsify's layout: one subfolder per hookpoint).

use std::path::{Path, PathBuf};

use crate::saelens::{CFG_FILE, WEIGHTS_FILE};
use crate::sparsify::SPARSIFY_WEIGHTS_FILE;
use crate::{saelens, sparsify, Sae, SaeError};

/// Which on-disk layout a folder holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaeFormat {
    /// `cfg.json` + `sae_weights.safetensors` (ours and SAELens, any version).
    SaeLens,
    /// `cfg.json` + `sae.safetensors` (EleutherAI sparsify).
    Sparsify,
}

/// Detects the layout of `dir`.
pub fn detect(dir: &Path) -> Result<SaeFormat, SaeError> {
    if !dir.is_dir() {
        return Err(SaeError::MissingDir {
            dir: dir.to_path_buf(),
        });
    }
    if dir.join(WEIGHTS_FILE).exists() {
        Ok(SaeFormat::SaeLens)
    } else if dir.join(SPARSIFY_WEIGHTS_FILE).exists() {
        Ok(SaeFormat::Sparsify)
    } else if dir.join(CFG_FILE).exists() {
        Err(SaeError::MissingFile {
            path: dir.join(WEIGHTS_FILE),
        })
    } else {
        Err(SaeError::NotAnSae {
            dir: dir.to_path_buf(),
        })
    }
}

/// Whether `dir` directly holds an SAE (a `cfg.json` beside either weights file).
fn holds_sae(dir: &Path) -> bool {
    dir.join(CFG_FILE).is_file()
        && (dir.join(WEIGHTS_FILE).is_file() || dir.join(SPARSIFY_WEIGHTS_FILE).is_file())
}

/// The names of `dir`'s subfolders that hold an SAE, sorted.
pub fn hooks_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut hooks: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| holds_sae(&e.path()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    hooks.sort();
    hooks
}

/// The folder holding the SAE that `dir` and `hook` name: `dir` itself when it holds one (and
/// `hook` is not one of its subfolders), else its subfolder `hook`; without `hook`, the only
/// SAE subfolder. A parent of several SAEs without `hook`, or a `hook` it lacks, is an error
/// listing the hooks it has.
pub fn resolve(dir: &Path, hook: Option<&str>) -> Result<PathBuf, SaeError> {
    if let Some(h) = hook {
        let sub = dir.join(h);
        if holds_sae(&sub) {
            return Ok(sub);
        }
    }
    if holds_sae(dir) || !dir.is_dir() {
        return Ok(dir.to_path_buf());
    }
    let hooks = hooks_in(dir);
    match (hook, hooks.len()) {
        (_, 0) => Ok(dir.to_path_buf()),
        (Some(h), _) => Err(SaeError::NoSuchHook {
            dir: dir.to_path_buf(),
            hook: h.to_string(),
            hooks,
        }),
        (None, 1) => Ok(dir.join(&hooks[0])),
        (None, _) => Err(SaeError::HookRequired {
            dir: dir.to_path_buf(),
            hooks,
        }),
    }
}

/// Loads whatever SAE `dir` holds.
pub fn load(dir: &Path) -> Result<Sae, SaeError> {
    match detect(dir)? {
        SaeFormat::SaeLens => saelens::load(dir),
        SaeFormat::Sparsify => sparsify::load(dir),
    }
}

impl Sae {
    /// Saves as a SAELens folder (see [`saelens::save`]), or where SAELens has no class for the
    /// SAE and sparsify has one (a TopK transcoder, TopK with a skip connection, groupmax) as a
    /// sparsify folder (see [`sparsify::save`]).
    pub fn save(&self, dir: &Path, log10_density: Option<&[f32]>) -> Result<(), SaeError> {
        let lens = crate::saelens_cfg::lens_architecture(&self.cfg, self.w_skip.is_some());
        match (lens, sparsify::unsupported(self)) {
            (None, None) => sparsify::save(self, dir, log10_density),
            (None, Some(why)) => Err(SaeError::Invalid(format!(
                "neither SAELens nor sparsify can represent a {}: SAELens has no class for it, \
                 and {why}",
                self.kind()
            ))),
            (Some(_), _) => saelens::save(self, dir, log10_density),
        }
    }

    /// Loads ours, SAELens (including the pre-6.0 flat cfg.json) or sparsify folders; a folder
    /// of one SAE per hook needs `hook` (see [`resolve`]).
    pub fn load_hook(dir: &Path, hook: Option<&str>) -> Result<Sae, SaeError> {
        load(&resolve(dir, hook)?)
    }

    /// Loads ours, SAELens (including the pre-6.0 flat cfg.json) or sparsify folders.
    pub fn load(dir: &Path) -> Result<Sae, SaeError> {
        Sae::load_hook(dir, None)
    }
}
