//! One array file opened for streaming: its rows (every axis but the last flattened) read a
//! block at a time, so a file larger than memory never is in memory.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::header::{self, Elem, Layout};
use super::ImportError;

/// An `.npy` or `.safetensors` array, header read and checked against the file's size.
#[derive(Clone, Debug)]
pub struct ArrayFile {
    pub path: PathBuf,
    /// The tensor read from a safetensors file.
    pub key: Option<String>,
    pub layout: Layout,
    /// Rows: the product of every axis but the last (for a 1-D array, its length).
    pub rows: u64,
    /// The last axis (1 for a 1-D array).
    pub width: usize,
    /// Size of the file.
    pub bytes: u64,
}

fn bad(path: &Path, msg: impl Into<String>) -> ImportError {
    ImportError::BadFile {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

fn io(path: &Path, err: std::io::Error) -> ImportError {
    ImportError::Io {
        path: path.to_path_buf(),
        err,
    }
}

impl ArrayFile {
    /// Opens `path` (`.npy`, or `.safetensors` with tensor `key`, or its only tensor). With
    /// `flat`, every element is a row of width 1 (token ids of any shape).
    pub fn open(path: &Path, key: Option<&str>, flat: bool) -> Result<ArrayFile, ImportError> {
        let file = File::open(path).map_err(|e| io(path, e))?;
        let bytes = file.metadata().map_err(|e| io(path, e))?.len();
        let mut r = BufReader::new(file);
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let (layout, key) = match ext {
            "npy" => {
                if let Some(k) = key {
                    return Err(bad(
                        path,
                        format!("a .npy file holds one array; --key {k:?} is for safetensors"),
                    ));
                }
                (header::npy(&mut r).map_err(|m| bad(path, m))?, None)
            }
            "safetensors" => {
                let tensors = header::safetensors(&mut r).map_err(|m| bad(path, m))?;
                pick(path, tensors, key)?
            }
            _ => return Err(bad(path, "expected a .npy or .safetensors file")),
        };
        if layout.offset + layout.len > bytes {
            return Err(bad(
                path,
                format!("truncated: the header promises {} bytes of data from byte {}, the file has {bytes}", layout.len, layout.offset),
            ));
        }
        let (rows, width) = match layout.shape.as_slice() {
            [] => return Err(bad(path, "a scalar is not a matrix of rows")),
            s if flat => (s.iter().map(|&v| v as u64).product(), 1),
            [n] => (*n as u64, 1),
            [lead @ .., d] => (lead.iter().map(|&s| s as u64).product(), *d),
        };
        Ok(ArrayFile {
            path: path.to_path_buf(),
            key,
            layout,
            rows,
            width,
            bytes,
        })
    }

    /// A reader positioned at row `start`.
    pub fn rows_from(&self, start: u64) -> Result<RowReader<'_>, ImportError> {
        let mut file = BufReader::with_capacity(
            1 << 20,
            File::open(&self.path).map_err(|e| io(&self.path, e))?,
        );
        let row_bytes = (self.width * self.layout.elem.size()) as u64;
        file.seek(SeekFrom::Start(self.layout.offset + start * row_bytes))
            .map_err(|e| io(&self.path, e))?;
        Ok(RowReader {
            array: self,
            file,
            next: start,
            buf: Vec::new(),
        })
    }
}

/// The tensor `key` of a safetensors file, or its only one.
fn pick(
    path: &Path,
    tensors: Vec<(String, Layout)>,
    key: Option<&str>,
) -> Result<(Layout, Option<String>), ImportError> {
    let mut names: Vec<String> = tensors.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    match key {
        Some(k) => match tensors.into_iter().find(|(n, _)| n == k) {
            Some((n, l)) => Ok((l, Some(n))),
            None => Err(ImportError::NoSuchKey {
                path: path.to_path_buf(),
                key: k.to_string(),
                keys: names,
            }),
        },
        None if tensors.len() == 1 => {
            let (n, l) = tensors.into_iter().next().expect("one tensor");
            Ok((l, Some(n)))
        }
        None => Err(ImportError::KeyRequired {
            path: path.to_path_buf(),
            keys: names,
        }),
    }
}

/// Reads consecutive rows of an [`ArrayFile`].
pub struct RowReader<'a> {
    array: &'a ArrayFile,
    file: BufReader<File>,
    next: u64,
    buf: Vec<u8>,
}

impl RowReader<'_> {
    /// Index of the next row.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Reads up to `max_rows` rows' raw bytes into the buffer; the number read.
    fn fill(&mut self, max_rows: usize) -> Result<usize, ImportError> {
        let n = (self.array.rows - self.next).min(max_rows as u64) as usize;
        let len = n * self.array.width * self.array.layout.elem.size();
        self.buf.resize(len, 0);
        self.file
            .read_exact(&mut self.buf)
            .map_err(|e| io(&self.array.path, e))?;
        self.next += n as u64;
        Ok(n)
    }

    /// Appends up to `max_rows` rows as f32 to `out`; the number of rows read (0 at the end).
    pub fn read_f32(&mut self, max_rows: usize, out: &mut Vec<f32>) -> Result<usize, ImportError> {
        let n = self.fill(max_rows)?;
        let b = &self.buf;
        match self.array.layout.elem {
            Elem::F32 => out.extend(
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            ),
            Elem::F16 => out.extend(
                b.chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()),
            ),
            Elem::BF16 => out.extend(
                b.chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()),
            ),
            Elem::F64 => out.extend(
                b.chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32),
            ),
            other => {
                return Err(bad(
                    &self.array.path,
                    format!(
                        "activations must be floating point, found {other:?} ({})",
                        self.array.layout.dtype
                    ),
                ))
            }
        }
        Ok(n)
    }

    /// Appends up to `max_rows` integer values as u32 to `out` (token ids); the number read.
    pub fn read_u32(&mut self, max_rows: usize, out: &mut Vec<u32>) -> Result<usize, ImportError> {
        let start = self.next;
        let n = self.fill(max_rows)?;
        let b = &self.buf;
        let values: Vec<i64> = match self.array.layout.elem {
            Elem::I64 => b
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
            Elem::I32 => b
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")) as i64)
                .collect(),
            Elem::I16 => b
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as i64)
                .collect(),
            Elem::U32 => b
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")) as i64)
                .collect(),
            Elem::U16 => b
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]) as i64)
                .collect(),
            Elem::U8 => b.iter().map(|&v| v as i64).collect(),
            other => {
                return Err(bad(
                    &self.array.path,
                    format!(
                        "token ids must be integers, found {other:?} ({})",
                        self.array.layout.dtype
                    ),
                ))
            }
        };
        if let Some(i) = values
            .iter()
            .position(|&v| !(0..=u32::MAX as i64).contains(&v))
        {
            return Err(bad(
                &self.array.path,
                format!(
                    "token id {} at row {} is not a u32",
                    values[i],
                    start + i as u64
                ),
            ));
        }
        out.extend(values.into_iter().map(|v| v as u32));
        Ok(n)
    }
}
