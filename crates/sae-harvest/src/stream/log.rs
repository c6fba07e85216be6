//! The stream's piece log: for each piece of the first epoch, the corpus position it starts at and the
//! rows it gave (later epochs repeat the first). A resumed stream replays its draws from these row counts
//! and re-runs the forward pass only for the pieces whose rows are still buffered, starting each at its
//! recorded position. One JSON line per piece after a header that fingerprints the stream's settings;
//! lines are appended as pieces are made and synced before a checkpoint relies on them, and a line torn
//! by a kill is dropped when the log is opened again.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::contexts::Cursor;
use crate::error::{HarvestError, Result};

const FORMAT: &str = "sae-stream-pieces";
const VERSION: u32 = 1;

/// The log's first line.
#[derive(Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    version: u32,
    /// Fingerprint of the settings that decide the pieces (model, corpus, hooks, cuts, budget).
    settings: String,
}

/// One piece of the first epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PieceInfo {
    /// Where the piece starts: its first context, and the epoch's rows before it.
    pub cursor: Cursor,
    /// Where the next piece of the epoch starts (the context after this piece's last one).
    pub next: Cursor,
    /// Rows it gave.
    pub rows: u32,
    /// It is the epoch's last piece.
    pub last: bool,
}

/// The log file and what it holds.
pub(crate) struct PieceLog {
    path: PathBuf,
    file: File,
    /// The first epoch's pieces known so far.
    pub pieces: Vec<PieceInfo>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HarvestError + '_ {
    move |source| HarvestError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn bad(path: &Path, msg: String) -> HarvestError {
    HarvestError::Invalid(format!("stream log {}: {msg}", path.display()))
}

fn line<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain records serialize") + "\n"
}

impl PieceLog {
    /// Opens the log at `path` (created when missing); an existing one must carry `settings`.
    pub fn open(path: &Path, settings: &str) -> Result<PieceLog> {
        let header = Header {
            format: FORMAT.into(),
            version: VERSION,
            settings: settings.into(),
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io(path)(e)),
        };
        // Only newline-terminated lines count: a kill may have torn the last one.
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        let mut lines = complete.lines();
        let mut pieces = Vec::new();
        if let Some(first) = lines.next() {
            let old: Header = serde_json::from_str(first).map_err(|e| bad(path, e.to_string()))?;
            if old != header {
                return Err(bad(
                    path,
                    "it belongs to a stream with other settings (model, corpus, hooks, context length, \
                     batch or budget); start the training again"
                        .into(),
                ));
            }
            for (i, l) in lines.enumerate() {
                let p: PieceInfo = serde_json::from_str(l)
                    .map_err(|e| bad(path, format!("line {}: {e}", i + 2)))?;
                pieces.push(p);
            }
        }
        let mut kept = line(&header);
        kept.extend(pieces.iter().map(line));
        if kept != text {
            sae_store::atomic_write(path, kept.as_bytes())?;
        }
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io(path))?;
        Ok(PieceLog {
            path: path.to_path_buf(),
            file,
            pieces,
        })
    }

    /// Appends the next piece of the first epoch.
    pub fn push(&mut self, p: PieceInfo) -> Result<()> {
        self.file
            .write_all(line(&p).as_bytes())
            .map_err(io(&self.path))?;
        self.pieces.push(p);
        Ok(())
    }

    /// Makes what was appended durable.
    pub fn sync(&mut self) -> Result<()> {
        self.file.sync_data().map_err(io(&self.path))
    }

    /// Pieces in the first epoch, once its last piece is known.
    pub fn epoch_len(&self) -> Option<u64> {
        self.pieces
            .last()
            .filter(|p| p.last)
            .map(|_| self.pieces.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(doc: u32, rows: u32, last: bool) -> PieceInfo {
        let cursor = Cursor {
            doc,
            window: 0,
            rows: 0,
        };
        PieceInfo {
            cursor,
            next: cursor,
            rows,
            last,
        }
    }

    #[test]
    fn a_torn_line_is_dropped_and_other_settings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let mut log = PieceLog::open(&path, "s1").unwrap();
        log.push(piece(0, 5, false)).unwrap();
        log.push(piece(3, 7, true)).unwrap();
        drop(log);
        let mut text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        text.push_str("{\"cursor\":{\"doc\":9");
        std::fs::write(&path, &text).unwrap();
        let log = PieceLog::open(&path, "s1").unwrap();
        assert_eq!(log.pieces, vec![piece(0, 5, false), piece(3, 7, true)]);
        assert_eq!(log.epoch_len(), Some(2));
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
        let err = PieceLog::open(&path, "s2").err().unwrap().to_string();
        assert!(err.contains("other settings"), "{err}");
    }
}
