//! The dashboard's side files: every group's units in chunks of [`CHUNK_UNITS`], one script per
//! chunk, `units-<hash>/<kind>-<n>.js`, holding units `n * CHUNK_UNITS ..` as in `report.json`
//! (statistics, histogram, contexts), their logit-lens tokens and the text of every token they
//! mention. Each file is one call `saeReportChunk({...})`: the page adds a `<script>` element for
//! the chunk of the card it shows, which works from `file://`, where chromium refuses fetch / XHR.
//!
//! The folder is written under a temporary name and renamed once complete; its name is a hash of
//! its contents, so `index.html` (written after it) always names a whole folder, and a rerun into
//! the same output folder removes the chunk folders of earlier runs ([`remove_stale_chunks`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::analyzer::UnitStats;
use crate::html::json_for_script;
use crate::schema::{GroupReport, LogitEffects, Report, UnitKind};
use crate::ReportError;

/// Units per chunk file.
pub const CHUNK_UNITS: usize = 128;
/// The global function a chunk file calls with its data.
pub const CHUNK_CALLBACK: &str = "saeReportChunk";
/// Chunk folders are named this prefix + 16 hex digits.
pub const CHUNK_DIR_PREFIX: &str = "units-";
const TMP_PREFIX: &str = ".units-tmp-";

/// What one chunk file passes to [`CHUNK_CALLBACK`].
#[derive(Serialize)]
struct Chunk<'a> {
    group: UnitKind,
    /// Id of the first unit.
    start: usize,
    units: &'a [UnitStats],
    /// Logit-lens effects of the same units, when the group has them.
    logits: Option<&'a [LogitEffects]>,
    /// Text of every token id the units' contexts and logit tokens use.
    vocab: BTreeMap<u32, &'a str>,
}

/// The name a unit kind has in `report.json` (and in chunk file names).
pub(crate) fn kind_name(kind: UnitKind) -> &'static str {
    match kind {
        UnitKind::Latents => "latents",
        UnitKind::Neurons => "neurons",
        UnitKind::Basis => "basis",
        UnitKind::Untrained => "untrained",
        UnitKind::Random => "random",
    }
}

/// File name (inside the chunk folder) of chunk `n` of a group.
pub fn chunk_file(kind: UnitKind, n: usize) -> String {
    format!("{}-{n}.js", kind_name(kind))
}

/// The script of chunk `n` of group `g`.
fn chunk_script(report: &Report, g: &GroupReport, n: usize) -> Result<String, ReportError> {
    let start = n * CHUNK_UNITS;
    let end = (start + CHUNK_UNITS).min(g.units.len());
    let units = &g.units[start..end];
    let logits = g
        .logits
        .as_ref()
        .map(|l| &l[start.min(l.len())..end.min(l.len())]);
    let mut ids: Vec<u32> = units
        .iter()
        .flat_map(|u| {
            u.top
                .iter()
                .chain(u.quantiles.iter().flat_map(|q| &q.contexts))
        })
        .flat_map(|c| c.tokens.iter().copied())
        .collect();
    for l in logits.into_iter().flatten() {
        ids.extend(l.promoted.iter().chain(&l.suppressed).map(|p| p.0));
    }
    let vocab = ids
        .into_iter()
        .filter_map(|id| report.vocab.get(&id).map(|t| (id, t.as_str())))
        .collect();
    let chunk = Chunk {
        group: g.kind,
        start,
        units,
        logits,
        vocab,
    };
    let json = serde_json::to_string(&chunk).map_err(|e| ReportError::BadReport {
        path: chunk_file(g.kind, n).into(),
        msg: e.to_string(),
    })?;
    Ok(format!("{CHUNK_CALLBACK}({});\n", json_for_script(&json)))
}

/// FNV-1a, 64 bit: names the chunk folder by its contents.
struct Fnv(u64);

impl Fnv {
    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes every group's chunk files into a new folder of `dir` and returns the folder's name
/// (`units-<hash>`). The files are written and synced under a temporary name, then the folder is
/// renamed into place (replacing a folder of the same name, which holds the same contents).
pub fn write_chunks(dir: &Path, report: &Report) -> Result<String, ReportError> {
    let tmp = dir.join(format!("{TMP_PREFIX}{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let hash = match fill_chunks(&tmp, report) {
        Ok(hash) => hash,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    let name = format!("{CHUNK_DIR_PREFIX}{hash:016x}");
    let target = dir.join(&name);
    if target.exists() {
        std::fs::remove_dir_all(&target).map_err(io(&target))?;
    }
    std::fs::rename(&tmp, &target).map_err(io(&target))?;
    Ok(name)
}

/// Writes (and syncs) the chunk files into `folder`; returns the hash of their names and contents.
fn fill_chunks(folder: &Path, report: &Report) -> Result<u64, ReportError> {
    let mut hash = Fnv(0xcbf2_9ce4_8422_2325);
    for g in &report.groups {
        for n in 0..g.units.len().div_ceil(CHUNK_UNITS) {
            let name = chunk_file(g.kind, n);
            let text = chunk_script(report, g, n)?;
            hash.update(name.as_bytes());
            hash.update(&(text.len() as u64).to_le_bytes());
            hash.update(text.as_bytes());
            let path = folder.join(&name);
            let mut f = std::fs::File::create(&path).map_err(io(&path))?;
            f.write_all(text.as_bytes()).map_err(io(&path))?;
            f.sync_all().map_err(io(&path))?;
        }
    }
    Ok(hash.0)
}

/// True for the name of a chunk folder (`units-` + 16 hex digits) or of a temporary one.
fn is_chunk_dir(name: &str) -> bool {
    let hex = |s: &str| s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit());
    name.strip_prefix(CHUNK_DIR_PREFIX).is_some_and(hex)
        || name
            .strip_prefix(TMP_PREFIX)
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes every chunk folder of `dir` but `keep` (earlier runs' chunks, and temporary folders
/// of runs that died), so that an output folder holds only the chunks its `index.html` names.
pub fn remove_stale_chunks(dir: &Path, keep: &str) -> Result<(), ReportError> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name != keep && is_chunk_dir(name) && entry.path().is_dir() {
            std::fs::remove_dir_all(entry.path()).map_err(io(&entry.path()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_the_report_names() {
        for kind in [
            UnitKind::Latents,
            UnitKind::Neurons,
            UnitKind::Basis,
            UnitKind::Untrained,
            UnitKind::Random,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind_name(kind));
        }
    }

    #[test]
    fn only_chunk_folders_count_as_stale() {
        assert!(is_chunk_dir("units-0123456789abcdef"));
        assert!(is_chunk_dir(".units-tmp-4242"));
        for other in [
            "units-0123",
            "units",
            "units-0123456789abcdefg",
            ".units-tmp-",
            "plots",
        ] {
            assert!(!is_chunk_dir(other), "{other}");
        }
    }

    #[test]
    fn fnv_matches_the_reference_vectors() {
        // FNV-1a 64 test vectors (Fowler, Noll, Vo): "" and "a".
        let h = |s: &str| {
            let mut f = Fnv(0xcbf2_9ce4_8422_2325);
            f.update(s.as_bytes());
            f.0
        };
        assert_eq!(h(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(h("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(h("foobar"), 0x8594_4171_f739_67e8);
    }
}
