//! The headers of the two array formats `sae import` reads: NumPy `.npy` (version 1-3, C order)
//! and safetensors (an 8-byte length, then a JSON table of tensors).

use std::io::Read;

use serde_json::Value;

/// Element type of an array on disk (little-endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    U32,
    U16,
    U8,
}

impl Elem {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Elem::F64 | Elem::I64 => 8,
            Elem::F32 | Elem::I32 | Elem::U32 => 4,
            Elem::F16 | Elem::BF16 | Elem::I16 | Elem::U16 => 2,
            Elem::U8 => 1,
        }
    }

    /// Whether it holds floating-point values.
    pub fn is_float(self) -> bool {
        matches!(self, Elem::F64 | Elem::F32 | Elem::F16 | Elem::BF16)
    }

    fn from_npy(descr: &str) -> Option<Elem> {
        // '<' little-endian, '|' not applicable (one byte), '=' native (little on every target we build).
        let (order, code) = descr.split_at(1);
        if !matches!(order, "<" | "|" | "=") {
            return None;
        }
        Some(match code {
            "f8" => Elem::F64,
            "f4" => Elem::F32,
            "f2" => Elem::F16,
            "i8" => Elem::I64,
            "i4" => Elem::I32,
            "i2" => Elem::I16,
            "u4" => Elem::U32,
            "u2" => Elem::U16,
            "u1" => Elem::U8,
            _ => return None,
        })
    }

    fn from_safetensors(dtype: &str) -> Option<Elem> {
        Some(match dtype {
            "F64" => Elem::F64,
            "F32" => Elem::F32,
            "F16" => Elem::F16,
            "BF16" => Elem::BF16,
            "I64" => Elem::I64,
            "I32" => Elem::I32,
            "I16" => Elem::I16,
            "U32" => Elem::U32,
            "U16" => Elem::U16,
            "U8" => Elem::U8,
            _ => return None,
        })
    }
}

/// Where an array's data lies in its file, and what it holds.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Element type as the file names it ("<f4", "BF16", ...).
    pub dtype: String,
    pub elem: Elem,
    pub shape: Vec<usize>,
    /// Byte offset of the first element.
    pub offset: u64,
    /// Bytes of data the header promises.
    pub len: u64,
}

/// Reads a `.npy` header; `Err` is a message for the user.
pub fn npy(r: &mut impl Read) -> Result<Layout, String> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)
        .map_err(|e| format!("not a .npy file ({e})"))?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (len, prefix) = match magic[6] {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).map_err(|e| e.to_string())?;
            (u16::from_le_bytes(b) as usize, 10)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b).map_err(|e| e.to_string())?;
            (u32::from_le_bytes(b) as usize, 12)
        }
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let mut text = vec![0u8; len];
    r.read_exact(&mut text)
        .map_err(|e| format!("truncated .npy header ({e})"))?;
    let text = String::from_utf8_lossy(&text);
    let descr = quoted_after(&text, "'descr'").ok_or("the .npy header has no 'descr'")?;
    let elem = Elem::from_npy(&descr)
        .ok_or_else(|| format!("unsupported .npy dtype {descr:?} (supported: f8 f4 f2 i8 i4 i2 u4 u2 u1, little-endian)"))?;
    if after(&text, "'fortran_order'").is_some_and(|v| v.trim_start().starts_with("True")) {
        return Err("the array is in Fortran (column-major) order; save it C-ordered (np.ascontiguousarray)".into());
    }
    let shape = after(&text, "'shape'")
        .and_then(parse_tuple)
        .ok_or("the .npy header has no readable 'shape'")?;
    let count: u64 = shape.iter().map(|&s| s as u64).product();
    Ok(Layout {
        dtype: descr,
        elem,
        shape,
        offset: (prefix + len) as u64,
        len: count * elem.size() as u64,
    })
}

/// The text after `key:` in a Python dict literal.
fn after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let i = text.find(key)? + key.len();
    let rest = text[i..].trim_start();
    rest.strip_prefix(':')
}

fn quoted_after(text: &str, key: &str) -> Option<String> {
    let rest = after(text, key)?.trim_start();
    let quote = rest.chars().next()?;
    let rest = &rest[1..];
    Some(rest[..rest.find(quote)?].to_string())
}

/// "(1000, 768), ..." -> [1000, 768].
fn parse_tuple(text: &str) -> Option<Vec<usize>> {
    let text = text.trim_start().strip_prefix('(')?;
    let inner = &text[..text.find(')')?];
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse().ok())
        .collect()
}

/// The tensors of a safetensors file: (name, layout), in file order.
pub fn safetensors(r: &mut impl Read) -> Result<Vec<(String, Layout)>, String> {
    let mut n = [0u8; 8];
    r.read_exact(&mut n)
        .map_err(|e| format!("not a safetensors file ({e})"))?;
    let n = u64::from_le_bytes(n);
    if n > 100 << 20 {
        return Err(format!("not a safetensors file (header length {n})"));
    }
    let mut text = vec![0u8; n as usize];
    r.read_exact(&mut text)
        .map_err(|e| format!("truncated safetensors header ({e})"))?;
    let header: serde_json::Map<String, Value> =
        serde_json::from_slice(&text).map_err(|e| format!("bad safetensors header: {e}"))?;
    let mut out = Vec::new();
    for (name, info) in header {
        if name == "__metadata__" {
            continue;
        }
        let dtype = info["dtype"].as_str().unwrap_or("?").to_string();
        let shape: Option<Vec<usize>> = info["shape"]
            .as_array()
            .and_then(|a| a.iter().map(|v| v.as_u64().map(|x| x as usize)).collect());
        let offsets = info["data_offsets"]
            .as_array()
            .filter(|a| a.len() == 2)
            .and_then(|a| Some((a[0].as_u64()?, a[1].as_u64()?)));
        let (Some(shape), Some((begin, end))) = (shape, offsets) else {
            return Err(format!("bad safetensors header entry for {name:?}"));
        };
        let Some(elem) = Elem::from_safetensors(&dtype) else {
            return Err(format!("tensor {name:?} has unsupported dtype {dtype}"));
        };
        out.push((
            name,
            Layout {
                dtype,
                elem,
                shape,
                offset: 8 + n + begin,
                len: end.saturating_sub(begin),
            },
        ));
    }
    out.sort_by_key(|(_, l)| l.offset);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A .npy header as numpy writes it (`version` 1 or 2), padded to 64 bytes.
    fn npy_bytes(version: u8, dict: &str) -> Vec<u8> {
        let mut text = dict.to_string();
        let prefix = if version == 1 { 10 } else { 12 };
        while !(prefix + text.len() + 1).is_multiple_of(64) {
            text.push(' ');
        }
        text.push('\n');
        let mut b = vec![0x93, b'N', b'U', b'M', b'P', b'Y', version, 0];
        match version {
            1 => b.extend((text.len() as u16).to_le_bytes()),
            _ => b.extend((text.len() as u32).to_le_bytes()),
        }
        b.extend(text.as_bytes());
        b
    }

    #[test]
    fn npy_headers_of_both_versions_and_any_rank() {
        let h = npy_bytes(
            1,
            "{'descr': '<f2', 'fortran_order': False, 'shape': (3, 5, 16), }",
        );
        let l = npy(&mut &h[..]).unwrap();
        assert_eq!(
            (l.elem, l.shape.clone(), l.offset, l.len),
            (Elem::F16, vec![3, 5, 16], h.len() as u64, 480)
        );
        let h = npy_bytes(
            2,
            "{'descr': '|u1', 'fortran_order': False, 'shape': (7,), }",
        );
        let l = npy(&mut &h[..]).unwrap();
        assert_eq!(
            (l.elem, l.shape, l.offset),
            (Elem::U8, vec![7], h.len() as u64)
        );
        let h = npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }");
        assert_eq!(npy(&mut &h[..]).unwrap().shape, Vec::<usize>::new());
    }

    #[test]
    fn npy_headers_we_cannot_stream_are_refused() {
        let be = npy_bytes(
            1,
            "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }",
        );
        assert!(npy(&mut &be[..])
            .unwrap_err()
            .contains("unsupported .npy dtype"));
        let obj = npy_bytes(
            1,
            "{'descr': '|O', 'fortran_order': False, 'shape': (2, 2), }",
        );
        assert!(npy(&mut &obj[..])
            .unwrap_err()
            .contains("unsupported .npy dtype"));
        let f = npy_bytes(
            1,
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
        );
        assert!(npy(&mut &f[..]).unwrap_err().contains("Fortran"));
        assert!(npy(&mut &b"PK\x03\x04 not npy"[..])
            .unwrap_err()
            .contains("not a .npy"));
    }

    #[test]
    fn safetensors_header_offsets_are_absolute() {
        let json = br#"{"__metadata__":{"a":"b"},"y":{"dtype":"I32","shape":[4],"data_offsets":[32,48]},"x":{"dtype":"BF16","shape":[4,4],"data_offsets":[0,32]}}"#;
        let mut b = (json.len() as u64).to_le_bytes().to_vec();
        b.extend(json);
        let t = safetensors(&mut &b[..]).unwrap();
        let names: Vec<&str> = t.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x", "y"], "in file order");
        assert_eq!(
            (t[0].1.elem, t[0].1.offset, t[0].1.len),
            (Elem::BF16, 8 + json.len() as u64, 32)
        );
        assert_eq!(
            (t[1].1.elem, t[1].1.offset),
            (Elem::I32, 8 + json.len() as u64 + 32)
        );
        let mut bad = 10u64.to_le_bytes().to_vec();
        bad.extend(b"{\"x\": 1}  ");
        assert!(safetensors(&mut &bad[..]).is_err());
    }
}
