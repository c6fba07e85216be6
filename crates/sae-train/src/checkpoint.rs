//! Checkpoints: one safetensors file holding parameters, Adam moments and dead-latent counters, with
//! the step, data position, input scale, BatchTopK threshold and config in its metadata. Written
//! atomically (temp file + rename), so a run killed at any moment leaves the previous checkpoint or
//! the new one, never a mix. Floats in the metadata are stored as their bit patterns (exact resume).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::adam::Adam;
use crate::config::{Resolved, TrainConfig};
use crate::dead::DeadTracker;
use crate::error::{Result, TrainError};
use crate::params::Params;
use crate::trainer::{adam_cfg, TrainState};

/// Folder (inside the SAE folder) holding the checkpoint.
pub const CHECKPOINT_DIR: &str = "checkpoint";
/// The checkpoint file inside [`CHECKPOINT_DIR`].
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
const META_KEY: &str = "sae_train";
const FORMAT: &str = "sae-train-checkpoint";
const VERSION: u32 = 1;

/// The checkpoint's metadata record (serialized as JSON into the safetensors header).
#[derive(Serialize, Deserialize)]
struct Meta {
    format: String,
    version: u32,
    /// Steps completed = batches consumed from the shuffled stream.
    step: u64,
    adam_t: u64,
    scale_bits: u32,
    threshold_bits: u32,
    density_rows: u64,
    d_in: usize,
    d_sae: usize,
    /// Transcoders: the output width and the target's scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    d_out: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target_scale_bits: Option<u32>,
    config: TrainConfig,
}

/// Path of the checkpoint file of the run in `out`.
pub fn checkpoint_path(out: &Path) -> PathBuf {
    out.join(CHECKPOINT_DIR).join(CHECKPOINT_FILE)
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn u64_bytes(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes `state` of a run configured by `cfg` to `out/checkpoint/checkpoint.safetensors`.
pub fn save(out: &Path, cfg: &TrainConfig, state: &TrainState) -> Result<()> {
    let path = checkpoint_path(out);
    let dir = out.join(CHECKPOINT_DIR);
    std::fs::create_dir_all(&dir).map_err(crate::error::io_err(&dir))?;
    let p = &state.params;
    let mut owned: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = Vec::new();
    for (prefix, set) in [
        ("param", p),
        ("adam_m", &state.adam.m),
        ("adam_v", &state.adam.v),
    ] {
        for (name, buf) in set.buffers() {
            owned.push((
                format!("{prefix}.{name}"),
                p.shape_of(name),
                Dtype::F32,
                f32_bytes(buf),
            ));
        }
    }
    owned.push((
        "dead.since".into(),
        vec![p.d_sae],
        Dtype::U64,
        u64_bytes(&state.dead.since),
    ));
    owned.push((
        "dead.fires".into(),
        vec![p.d_sae],
        Dtype::U64,
        u64_bytes(&state.dead.fires),
    ));
    let meta = Meta {
        format: FORMAT.into(),
        version: VERSION,
        step: state.step,
        adam_t: state.adam.t,
        scale_bits: state.scale.to_bits(),
        threshold_bits: state.threshold.to_bits(),
        density_rows: state.dead.rows,
        d_in: p.d_in,
        d_sae: p.d_sae,
        d_out: p.transcoder.then_some(p.d_out),
        target_scale_bits: p.transcoder.then(|| state.target_scale.to_bits()),
        config: cfg.clone(),
    };
    let meta_json = serde_json::to_string(&meta).map_err(|e| bad(&path, e.to_string()))?;
    let mut views = Vec::with_capacity(owned.len());
    for (name, shape, dtype, bytes) in &owned {
        let view =
            TensorView::new(*dtype, shape.clone(), bytes).map_err(|e| bad(&path, e.to_string()))?;
        views.push((name.as_str(), view));
    }
    let header = HashMap::from([(META_KEY.to_string(), meta_json)]);
    let bytes =
        safetensors::serialize(views, Some(header)).map_err(|e| bad(&path, e.to_string()))?;
    sae_store::atomic_write(&path, &bytes)?;
    Ok(())
}

fn bad(path: &Path, reason: impl Into<String>) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Settings that must match between a checkpoint and the run resuming it (logging and
/// checkpoint cadence may change).
fn same_run(a: &TrainConfig, b: &TrainConfig) -> bool {
    let strip = |c: &TrainConfig| TrainConfig {
        log_every: 0,
        checkpoint_every: 0,
        ..c.clone()
    };
    strip(a) == strip(b)
}

/// Reads the checkpoint of the run in `out`; `cfg` and `res` must describe the same run.
pub fn load(out: &Path, cfg: &TrainConfig, res: &Resolved) -> Result<TrainState> {
    let path = checkpoint_path(out);
    let bytes = std::fs::read(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            bad(
                &path,
                "not found: nothing to resume (train without --resume first)",
            )
        } else {
            bad(&path, e.to_string())
        }
    })?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(&path, e.to_string()))?;
    let meta_json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or_else(|| bad(&path, "no sae_train metadata"))?;
    let meta: Meta = serde_json::from_str(meta_json).map_err(|e| bad(&path, e.to_string()))?;
    if meta.format != FORMAT || meta.version != VERSION {
        return Err(bad(
            &path,
            format!("unsupported format {} v{}", meta.format, meta.version),
        ));
    }
    if !same_run(&meta.config, cfg)
        || meta.d_in != res.d_in
        || meta.d_sae != res.d_sae
        || meta.d_out != res.d_out
    {
        return Err(bad(
            &path,
            "it belongs to a run with different settings; resume with the same config and flags",
        ));
    }
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(&path, e.to_string()))?;
    let get = |name: &str, dtype: Dtype, len: usize| -> Result<Vec<u8>> {
        let t = st
            .tensor(name)
            .map_err(|e| bad(&path, format!("{name}: {e}")))?;
        if t.dtype() != dtype || t.data().len() != len * dtype.bitsize() / 8 {
            return Err(bad(&path, format!("{name} has the wrong type or size")));
        }
        Ok(t.data().to_vec())
    };
    let f32s = |b: Vec<u8>| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let u64s = |b: Vec<u8>| -> Vec<u64> {
        b.chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect()
    };
    let with_thr = matches!(cfg.arch, crate::config::ArchConfig::JumpRelu { .. });
    let read_set = |prefix: &str| -> Result<Params> {
        let (d_in, d_sae) = (res.d_in, res.d_sae);
        let mut p = Params {
            d_in,
            d_sae,
            d_out: res.d_out.unwrap_or(d_in),
            transcoder: res.d_out.is_some(),
            w_enc: vec![],
            b_enc: vec![],
            w_dec: vec![],
            b_dec: vec![],
            log_threshold: with_thr.then(Vec::new),
            w_skip: (res.d_out.is_some() && cfg.skip).then(Vec::new),
        };
        let shapes: Vec<(&str, usize)> = p
            .buffers()
            .iter()
            .map(|(n, _)| (*n, p.shape_of(n).iter().product()))
            .collect();
        for ((name, buf), (_, len)) in p.buffers_mut().into_iter().zip(shapes) {
            *buf = f32s(get(&format!("{prefix}.{name}"), Dtype::F32, len)?);
        }
        Ok(p)
    };
    let params = read_set("param")?;
    let adam = Adam {
        cfg: adam_cfg(cfg),
        m: read_set("adam_m")?,
        v: read_set("adam_v")?,
        t: meta.adam_t,
    };
    let dead = DeadTracker {
        window: res.dead_tokens,
        since: u64s(get("dead.since", Dtype::U64, res.d_sae)?),
        fires: u64s(get("dead.fires", Dtype::U64, res.d_sae)?),
        rows: meta.density_rows,
    };
    Ok(TrainState {
        params,
        adam,
        dead,
        step: meta.step,
        scale: f32::from_bits(meta.scale_bits),
        target_scale: f32::from_bits(meta.target_scale_bits.unwrap_or(meta.scale_bits)),
        threshold: f32::from_bits(meta.threshold_bits),
    })
}
