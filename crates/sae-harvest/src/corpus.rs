//! The text corpus: `.txt` files (one document each), `.jsonl` files (one document per line, field `text`),
//! and folders of them, read in a fixed order so that document ids are stable across runs.

use std::path::{Path, PathBuf};

use crate::error::{HarvestError, Result};

/// One document of the corpus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Index among all non-empty documents of the corpus, in reading order.
    pub id: u32,
    /// The text.
    pub text: String,
}

/// The corpus files, expanded and sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corpus {
    /// `.txt` / `.jsonl` files in reading order.
    pub files: Vec<PathBuf>,
    /// Their total size in bytes (for progress estimates).
    pub bytes: u64,
}

fn is_corpus_file(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("txt") | Some("jsonl")
    )
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let io = |source| HarvestError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if is_corpus_file(&p) {
            out.push(p);
        }
    }
    Ok(())
}

impl Corpus {
    /// Expands files and folders (recursively, sorted by path) into the corpus files.
    /// A path that does not exist, or a file that is neither .txt nor .jsonl, is an error.
    pub fn open(paths: &[PathBuf]) -> Result<Corpus> {
        let mut files = Vec::new();
        for p in paths {
            if p.is_dir() {
                walk(p, &mut files)?;
            } else if p.is_file() {
                if !is_corpus_file(p) {
                    return Err(HarvestError::Corpus {
                        path: p.clone(),
                        message: "not a .txt or .jsonl file".into(),
                    });
                }
                files.push(p.clone());
            } else {
                return Err(HarvestError::Corpus {
                    path: p.clone(),
                    message: "no such file or folder".into(),
                });
            }
        }
        let bytes = files
            .iter()
            .filter_map(|f| f.metadata().ok())
            .map(|m| m.len())
            .sum();
        Ok(Corpus { files, bytes })
    }

    /// The file paths as strings, for manifests.
    pub fn file_names(&self) -> Vec<String> {
        self.files.iter().map(|f| f.display().to_string()).collect()
    }

    /// Reads the documents of one file. A file that is not valid UTF-8 yields `Ok(None)` (the caller warns
    /// and skips it); a .jsonl line that is not an object with a string `text` is an error naming the line.
    pub fn read_file(path: &Path) -> Result<Option<Vec<String>>> {
        let bytes = std::fs::read(path).map_err(|source| HarvestError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let Ok(text) = String::from_utf8(bytes) else {
            return Ok(None);
        };
        if path.extension().and_then(|e| e.to_str()) == Some("txt") {
            return Ok(Some(vec![text]));
        }
        let mut docs = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = |message: String| HarvestError::Corpus {
                path: path.to_path_buf(),
                message: format!("line {}: {message}", i + 1),
            };
            let value: serde_json::Value =
                serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
            let doc = value
                .get("text")
                .and_then(|t| t.as_str())
                .ok_or_else(|| bad("expected an object with a string field `text`".into()))?;
            docs.push(doc.to_string());
        }
        Ok(Some(docs))
    }

    /// Every non-empty document from document id `from` on, in order; `warn` hears of skipped files.
    pub fn documents<'a>(&'a self, from: u32, warn: &'a mut dyn FnMut(String)) -> Documents<'a> {
        Documents {
            corpus: self,
            file: 0,
            pending: Vec::new().into_iter(),
            next_id: 0,
            from,
            warn,
            bytes_done: 0,
        }
    }
}

/// Iterator over a corpus's documents (see [`Corpus::documents`]).
pub struct Documents<'a> {
    corpus: &'a Corpus,
    file: usize,
    pending: std::vec::IntoIter<String>,
    next_id: u32,
    from: u32,
    warn: &'a mut dyn FnMut(String),
    bytes_done: u64,
}

impl Documents<'_> {
    /// Bytes of the files read so far.
    pub fn bytes_done(&self) -> u64 {
        self.bytes_done
    }
}

impl Iterator for Documents<'_> {
    type Item = Result<Document>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            for text in self.pending.by_ref() {
                if text.trim().is_empty() {
                    continue;
                }
                let id = self.next_id;
                self.next_id += 1;
                if id >= self.from {
                    return Some(Ok(Document { id, text }));
                }
            }
            let path = self.corpus.files.get(self.file)?;
            self.file += 1;
            self.bytes_done += path.metadata().map(|m| m.len()).unwrap_or(0);
            match Corpus::read_file(path) {
                Ok(Some(docs)) => self.pending = docs.into_iter(),
                Ok(None) => (self.warn)(format!("skipping {}: not valid UTF-8", path.display())),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_txt_jsonl_and_folders_in_order_and_skips_non_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("b");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(dir.path().join("a.txt"), "first doc").unwrap();
        std::fs::write(
            sub.join("c.jsonl"),
            "{\"text\": \"two\"}\n\n{\"text\": \"  \"}\n{\"text\": \"three\"}\n",
        )
        .unwrap();
        std::fs::write(sub.join("d.txt"), [0xff, 0xfe, 0x41]).unwrap();
        std::fs::write(sub.join("notes.md"), "ignored").unwrap();
        let corpus = Corpus::open(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(corpus.files.len(), 3);
        let mut warnings = Vec::new();
        let mut warn = |w: String| warnings.push(w);
        let docs: Vec<Document> = corpus
            .documents(0, &mut warn)
            .collect::<Result<_>>()
            .unwrap();
        let texts: Vec<(u32, &str)> = docs.iter().map(|d| (d.id, d.text.as_str())).collect();
        assert_eq!(texts, vec![(0, "first doc"), (1, "two"), (2, "three")]);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("d.txt"), "{warnings:?}");
        let mut quiet = |_: String| {};
        let later: Vec<u32> = corpus
            .documents(1, &mut quiet)
            .map(|d| d.unwrap().id)
            .collect();
        assert_eq!(later, vec![1, 2]);
    }

    #[test]
    fn bad_jsonl_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.jsonl");
        std::fs::write(&f, "{\"text\": \"ok\"}\n{\"body\": 1}\n").unwrap();
        let err = Corpus::read_file(&f).unwrap_err().to_string();
        assert!(err.contains("x.jsonl") && err.contains("line 2"), "{err}");
    }
}
