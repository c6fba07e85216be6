//! Several SAEs from one config, and where each goes.
//!
//! A sweep file is an ordinary training config (the shared settings) plus `[[sweep]]` entries;
//! each entry has a `name` (its output subfolder) and overrides any top-level setting. An entry's
//! `arch` table is merged into the shared one when it names the same `kind` or none (so
//! `arch = { k = 16 }` changes only k) and replaces it when it names another kind:
//!
//! ```toml
//! steps = 2000
//! batch = 4096
//! [arch]
//! kind = "topk"
//! k = 32
//!
//! [[sweep]]
//! name = "k16"
//! arch = { k = 16 }
//!
//! [[sweep]]
//! name = "relu-l1"
//! arch = { kind = "relu-l1", l1_coef = 5.0 }
//! expansion = 16
//! ```
//!
//! Entries that keep `seed`, `batch` and `shuffle_buffer_mib` share one read of the data.

use std::path::{Path, PathBuf};

use crate::config::{toml_error, TrainConfig};
use crate::error::{Result, TrainError};
use crate::run::RunSpec;
use crate::trainer::Backend;

/// One SAE of a sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepEntry {
    /// Its name: the output subfolder.
    pub name: String,
    /// Its settings (the shared ones with the entry's overrides).
    pub cfg: TrainConfig,
}

/// A training config with or without `[[sweep]]` entries.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepConfig {
    /// The shared settings (the whole config when there are no entries).
    pub base: TrainConfig,
    /// The entries; empty for a single SAE.
    pub entries: Vec<SweepEntry>,
}

fn config_err(what: &str, e: impl std::fmt::Display) -> TrainError {
    let msg = e.to_string().trim().replace('\n', " ");
    TrainError::Config(format!("{what}: {msg}"))
}

/// Checks that `name` can be a folder name of its own.
fn check_name(name: &str) -> Result<()> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "._-+=".contains(c);
    if name.is_empty() || name.starts_with('.') || !name.chars().all(ok) {
        return Err(TrainError::Config(format!(
            "sweep entry name {name:?} must be a folder name: letters, digits and . _ - + =, not starting with '.'"
        )));
    }
    Ok(())
}

/// The entry's `arch` over the shared one: merged for the same kind (or none), else replaced.
fn merge_arch(base: &TrainConfig, entry: toml::Value) -> Result<toml::Value> {
    let toml::Value::Table(entry) = entry else {
        return Err(TrainError::Config(
            "sweep entry `arch` must be a table".into(),
        ));
    };
    let kind = entry.get("kind").and_then(|k| k.as_str());
    if kind.is_some_and(|k| k != base.arch.name()) {
        return Ok(toml::Value::Table(entry));
    }
    let mut merged = match toml::Value::try_from(&base.arch) {
        Ok(toml::Value::Table(t)) => t,
        _ => {
            return Err(TrainError::Config(
                "cannot write the shared [arch] as TOML".into(),
            ))
        }
    };
    merged.extend(entry);
    Ok(toml::Value::Table(merged))
}

impl SweepConfig {
    /// One SAE with `cfg`.
    pub fn single(cfg: TrainConfig) -> SweepConfig {
        SweepConfig {
            base: cfg,
            entries: Vec::new(),
        }
    }

    /// Parses a config; `[[sweep]]` entries are optional. Unknown keys are errors naming them.
    pub fn from_toml(text: &str) -> Result<SweepConfig> {
        let mut table: toml::Table = text.parse().map_err(|e| toml_error(text, &e))?;
        let Some(sweep) = table.remove("sweep") else {
            return Ok(SweepConfig::single(TrainConfig::from_toml(text)?));
        };
        let base: TrainConfig = toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e| config_err("shared settings", e))?;
        let Some(items) = sweep.as_array().filter(|a| !a.is_empty()) else {
            return Err(TrainError::Config(
                "`sweep` must be a non-empty array of tables ([[sweep]] entries)".into(),
            ));
        };
        let mut entries: Vec<SweepEntry> = Vec::with_capacity(items.len());
        for (n, item) in items.iter().enumerate() {
            let what = format!("sweep entry {}", n + 1);
            let Some(mut entry) = item.as_table().cloned() else {
                return Err(config_err(&what, "not a table"));
            };
            let name = match entry.remove("name") {
                Some(toml::Value::String(s)) => s,
                _ => return Err(config_err(&what, "needs a `name` (its output folder)")),
            };
            check_name(&name)?;
            if entries.iter().any(|e| e.name == name) {
                return Err(config_err(&what, format!("the name {name:?} is taken")));
            }
            let what = format!("{what} ({name})");
            let mut merged = table.clone();
            for (k, v) in entry {
                let v = match k.as_str() {
                    "arch" => merge_arch(&base, v).map_err(|e| config_err(&what, e))?,
                    _ => v,
                };
                merged.insert(k, v);
            }
            let cfg: TrainConfig = toml::Value::Table(merged)
                .try_into()
                .map_err(|e| config_err(&what, e))?;
            entries.push(SweepEntry { name, cfg });
        }
        Ok(SweepConfig { base, entries })
    }

    /// Applies `f` (e.g. command-line overrides) to the shared settings and every entry.
    pub fn for_each_mut<E>(
        &mut self,
        mut f: impl FnMut(&mut TrainConfig) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        f(&mut self.base)?;
        self.entries.iter_mut().try_for_each(|e| f(&mut e.cfg))
    }

    /// True when the config trains more than the one SAE of the shared settings.
    pub fn is_sweep(&self) -> bool {
        !self.entries.is_empty()
    }
}

/// The hook stores of a harvest folder (`OUT/<hook name>/`, each with a manifest), sorted; None
/// when `dir` is a store itself or holds none.
pub fn hook_stores(dir: &Path) -> Option<Vec<PathBuf>> {
    if dir.join(sae_store::MANIFEST_FILE).exists() {
        return None;
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(sae_store::MANIFEST_FILE).is_file())
        .collect();
    found.sort();
    (!found.is_empty()).then_some(found)
}

/// Every SAE of a run over `stores` with `sweep`, and its output folder: `out` itself for one
/// store and no sweep; `out/<entry>` for a sweep; with `per_store` (several stores, or a harvest
/// folder) `out/<store folder name>` and `out/<store folder name>/<entry>`.
pub fn plan(
    stores: &[PathBuf],
    per_store: bool,
    out: &Path,
    sweep: &SweepConfig,
    resume: bool,
    backend: Backend,
) -> Result<Vec<RunSpec>> {
    let mut specs = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for store in stores {
        let dir = if per_store {
            let name = store
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .ok_or_else(|| TrainError::Invalid(format!("{} has no name", store.display())))?;
            if names.contains(&name) {
                return Err(TrainError::Invalid(format!(
                    "two stores are named {name:?}; their SAEs would share out/{name}"
                )));
            }
            names.push(name.clone());
            out.join(name)
        } else {
            out.to_path_buf()
        };
        let runs: Vec<(PathBuf, &TrainConfig)> = match sweep.is_sweep() {
            true => sweep
                .entries
                .iter()
                .map(|e| (dir.join(&e.name), &e.cfg))
                .collect(),
            false => vec![(dir, &sweep.base)],
        };
        for (o, cfg) in runs {
            specs.push(RunSpec {
                store: store.clone(),
                target: None,
                out: o,
                cfg: cfg.clone(),
                resume,
                backend,
            });
        }
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ArchConfig;

    const SWEEP: &str = r#"
steps = 300
batch = 256
[arch]
kind = "topk"
k = 8
auxk_coef = 0.05

[[sweep]]
name = "k4"
arch = { k = 4 }

[[sweep]]
name = "l1-wide"
arch = { kind = "relu-l1" }
expansion = 16
"#;

    #[test]
    fn entries_override_the_shared_settings() {
        let s = SweepConfig::from_toml(SWEEP).unwrap();
        assert_eq!(s.entries.len(), 2);
        let (a, b) = (&s.entries[0].cfg, &s.entries[1].cfg);
        assert_eq!((a.steps, a.batch), (300, 256));
        // Same kind: merged, so auxk_coef stays 0.05.
        let want = ArchConfig::TopK {
            k: 4,
            auxk_coef: 0.05,
            k_aux: None,
        };
        assert_eq!(a.arch, want);
        assert_eq!(a.expansion, s.base.expansion);
        // Another kind: replaced by that kind's defaults.
        assert_eq!(b.arch.name(), "relu-l1");
        assert_eq!((b.expansion, b.steps), (16.0, 300));
        // A file without entries is an ordinary config.
        let single = SweepConfig::from_toml("steps = 5").unwrap();
        assert!(!single.is_sweep());
        assert_eq!(single.base.steps, 5);
    }

    #[test]
    fn mistakes_name_the_entry_and_the_key() {
        let bad = |text: &str| SweepConfig::from_toml(text).unwrap_err().to_string();
        let e = bad("[[sweep]]\nname = \"a\"\nstepz = 3\n");
        assert!(
            e.contains("sweep entry 1 (a)") && e.contains("stepz"),
            "{e}"
        );
        let e = bad("[[sweep]]\nname = \"a\"\narch = { kind = \"topk\", kk = 3 }\n");
        assert!(e.contains("kk"), "{e}");
        assert!(bad("[[sweep]]\nsteps = 3\n").contains("needs a `name`"));
        assert!(bad("[[sweep]]\nname = \"../x\"\n").contains("folder name"));
        assert!(bad("[[sweep]]\nname = \"a\"\n[[sweep]]\nname = \"a\"\n").contains("taken"));
        assert!(bad("stepz = 1\n[[sweep]]\nname = \"a\"\n").contains("shared settings"));
        assert!(bad("steps = 1\nsweep = 3\n").contains("non-empty array"));
    }

    #[test]
    fn the_layout_gives_every_sae_its_own_folder() {
        let sweep = SweepConfig::from_toml(SWEEP).unwrap();
        let single = SweepConfig::single(TrainConfig::default());
        let stores = [PathBuf::from("h/blocks.1.x"), PathBuf::from("h/blocks.2.x")];
        let outs = |stores: &[PathBuf], per_store, s: &SweepConfig| -> Vec<PathBuf> {
            let specs = plan(stores, per_store, Path::new("o"), s, false, Backend::Fast);
            specs.unwrap().into_iter().map(|r| r.out).collect()
        };
        assert_eq!(outs(&stores[..1], false, &single), [PathBuf::from("o")]);
        assert_eq!(
            outs(&stores[..1], false, &sweep),
            ["o/k4", "o/l1-wide"].map(PathBuf::from)
        );
        assert_eq!(
            outs(&stores, true, &single),
            ["o/blocks.1.x", "o/blocks.2.x"].map(PathBuf::from)
        );
        assert_eq!(outs(&stores, true, &sweep).len(), 4);
        assert_eq!(
            outs(&stores, true, &sweep)[3],
            PathBuf::from("o/blocks.2.x/l1-wide")
        );
        let twins = [PathBuf::from("a/s"), PathBuf::from("b/s")];
        assert!(plan(&twins, true, Path::new("o"), &single, false, Backend::Fast).is_err());
    }
}
