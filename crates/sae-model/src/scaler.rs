//! SAELens' `activation_scaler.json`: the input scaling factor of `expected_average_only_in`
//! (`{"scaling_factor": s}`, inputs multiplied by s in training), written beside a checkpoint.

use std::path::Path;

use crate::json::CfgObject;
use crate::{InputNorm, SaeConfig, SaeError};

/// File name SAELens writes the activation scaler to.
pub const SCALER_FILE: &str = "activation_scaler.json";

/// The factor to fold into the weights at load: present when the config asks for
/// expected_average_only_in and `dir` holds an `activation_scaler.json` with a non-null
/// `scaling_factor`. Without the file the factor is taken as already folded (SAELens folds it
/// when it saves an SAE and loads such a folder without scaling).
pub fn folded_factor(dir: &Path, cfg: &SaeConfig) -> Result<Option<f64>, SaeError> {
    let path = dir.join(SCALER_FILE);
    if cfg.normalize_activations != InputNorm::ExpectedAverageOnlyIn || !path.exists() {
        return Ok(None);
    }
    let obj = CfgObject::read(&path)?;
    if obj.get("has_whitening").and_then(|v| v.as_bool()) == Some(true) {
        return Err(SaeError::UnsupportedNormalization {
            path,
            name: "covariance_whitening (activation_scaler.json has_whitening)".into(),
        });
    }
    match obj.get("scaling_factor") {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(s) if s.is_finite() && s > 0.0 => Ok(Some(s)),
            _ => Err(obj.bad(format!("scaling_factor must be a positive number, got {v}"))),
        },
    }
}
