//! Reading and writing safetensors weight files: any float dtype in, f32 candle tensors out.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use safetensors::{Dtype, SafeTensors};

use crate::SaeError;

/// A safetensors file read into memory.
pub struct WeightFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl WeightFile {
    /// Reads `path`; a missing file is [`SaeError::MissingFile`].
    pub fn read(path: &Path) -> Result<WeightFile, SaeError> {
        let bytes = std::fs::read(path).map_err(|e| SaeError::reading(path, e))?;
        let file = WeightFile {
            path: path.to_path_buf(),
            bytes,
        };
        file.parse()?;
        Ok(file)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn parse(&self) -> Result<SafeTensors<'_>, SaeError> {
        SafeTensors::deserialize(&self.bytes).map_err(|e| SaeError::BadSafetensors {
            path: self.path.clone(),
            msg: e.to_string(),
        })
    }

    /// Whether the file holds a tensor called `name`.
    pub fn has(&self, name: &str) -> bool {
        self.parse()
            .map(|st| st.tensor(name).is_ok())
            .unwrap_or(false)
    }

    /// Shape of tensor `name`.
    pub fn shape(&self, name: &str) -> Result<Vec<usize>, SaeError> {
        let st = self.parse()?;
        let view = st.tensor(name).map_err(|_| self.missing(name))?;
        Ok(view.shape().to_vec())
    }

    pub(crate) fn missing(&self, name: &str) -> SaeError {
        SaeError::MissingTensor {
            path: self.path.clone(),
            name: name.to_string(),
        }
    }

    /// Tensor `name` converted to f32, checked to have shape `expected` and finite values.
    pub fn f32(&self, name: &str, expected: &[usize]) -> Result<Vec<f32>, SaeError> {
        let st = self.parse()?;
        let view = st.tensor(name).map_err(|_| self.missing(name))?;
        if view.shape() != expected {
            return Err(SaeError::BadShape {
                path: self.path.clone(),
                name: name.to_string(),
                expected: expected.to_vec(),
                found: view.shape().to_vec(),
            });
        }
        let values =
            to_f32(view.dtype(), view.data()).ok_or_else(|| SaeError::UnsupportedDtype {
                path: self.path.clone(),
                name: name.to_string(),
                dtype: format!("{:?}", view.dtype()),
            })?;
        if let Some(index) = values.iter().position(|v| !v.is_finite()) {
            return Err(SaeError::NonFiniteWeight {
                path: self.path.clone(),
                name: name.to_string(),
                index,
            });
        }
        Ok(values)
    }

    /// Tensor `name` as a CPU f32 candle tensor of shape `expected`.
    pub fn tensor(&self, name: &str, expected: &[usize]) -> Result<Tensor, SaeError> {
        let values = self.f32(name, expected)?;
        Ok(Tensor::from_vec(values, expected, &Device::Cpu)?)
    }
}

/// Little-endian bytes of a float dtype -> f32 values; None for other dtypes.
fn to_f32(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    let out = match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
        _ => return None,
    };
    Some(out)
}

/// Serializes named f32 tensors (any shape) into safetensors bytes.
pub fn serialize_f32(tensors: &[(&str, &Tensor)], path: &Path) -> Result<Vec<u8>, SaeError> {
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let values = t
            .flatten_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1::<f32>()?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        owned.push((name.to_string(), t.dims().to_vec(), bytes));
    }
    serialize_raw(&owned, path)
}

/// Serializes (name, shape, little-endian f32 bytes) triples into safetensors bytes.
pub fn serialize_raw(
    tensors: &[(String, Vec<usize>, Vec<u8>)],
    path: &Path,
) -> Result<Vec<u8>, SaeError> {
    let bad = |e: safetensors::SafeTensorError| SaeError::BadSafetensors {
        path: path.to_path_buf(),
        msg: e.to_string(),
    };
    let mut views = Vec::with_capacity(tensors.len());
    for (name, shape, bytes) in tensors {
        let view =
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes).map_err(bad)?;
        views.push((name.as_str(), view));
    }
    safetensors::serialize(views, None).map_err(bad)
}
