//! Opening an SAE folder: tells SAELens from sparsify layouts and dispatches.

use std::path::Path;

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

/// Loads whatever SAE `dir` holds.
pub fn load(dir: &Path) -> Result<Sae, SaeError> {
    match detect(dir)? {
        SaeFormat::SaeLens => saelens::load(dir),
        SaeFormat::Sparsify => sparsify::load(dir),
    }
}

impl Sae {
    /// Saves as a SAELens folder (see [`saelens::save`]).
    pub fn save(&self, dir: &Path, log10_density: Option<&[f32]>) -> Result<(), SaeError> {
        saelens::save(self, dir, log10_density)
    }

    /// Loads ours, SAELens (including the pre-6.0 flat cfg.json) or sparsify folders.
    pub fn load(dir: &Path) -> Result<Sae, SaeError> {
        load(dir)
    }
}
