//! One SAE of a run: its locked output folder, its trainer (fresh or resumed from its checkpoint),
//! its metrics.jsonl and checkpoints, and the SAE saved at the end. Several members may share one
//! stream of batches ([`crate::multi`]); each consumes exactly the batches it would alone.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use sae_store::OutputLock;

use crate::checkpoint::{self, checkpoint_path, CHECKPOINT_DIR};
use crate::config::Resolved;
use crate::error::{io_err, Result, TrainError};
use crate::export::metadata;
use crate::run::{RunSpec, CONFIG_FILE, METRICS_FILE};
use crate::source::{BatchSource, DataInfo};
use crate::trainer::{StepMetrics, Trainer};
use crate::transcoder::resolve_for;

/// Seed offset of the sample used for initialisation (independent of the training stream).
const INIT_SEED_XOR: u64 = 0x1417_5EED;

/// What the lock file says took the lock.
pub(crate) const LOCK_COMMAND: &str = "sae train";

/// Whether `out` holds a saved SAE: SAELens' weights, or sparsify's (a TopK transcoder).
fn saved(out: &Path) -> bool {
    out.join(sae_model::saelens::WEIGHTS_FILE).exists()
        || out
            .join(sae_model::sparsify::SPARSIFY_WEIGHTS_FILE)
            .exists()
}

fn check_out_folder(out: &Path, resume: bool) -> Result<()> {
    let weights = saved(out);
    let ckpt = checkpoint_path(out).exists();
    let invalid = |m: String| Err(TrainError::Invalid(m));
    match (resume, weights, ckpt) {
        (false, true, _) => invalid(format!(
            "{} already holds a trained SAE; choose another output folder",
            out.display()
        )),
        (false, false, true) => invalid(format!(
            "{} holds an interrupted run; pass --resume to continue it or choose another folder",
            out.display()
        )),
        (true, true, false) => invalid(format!("the run in {} already finished", out.display())),
        _ => Ok(()),
    }
}

/// True when `out` holds a finished SAE and no checkpoint (a resumed sweep skips it).
pub(crate) fn finished(out: &Path) -> bool {
    saved(out) && !checkpoint_path(out).exists()
}

/// Keeps the lines of metrics.jsonl up to `step` (a resumed run rewrites what followed).
fn truncate_metrics(path: &Path, step: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                .is_some_and(|s| s <= step)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    sae_store::atomic_write(path, kept.as_bytes())?;
    Ok(())
}

/// What one step of a member did.
pub(crate) struct Stepped {
    pub metrics: StepMetrics,
    /// Rows per second of this member since the loop began.
    pub rows_per_s: f64,
    /// A checkpoint was written after the step.
    pub checkpoint: bool,
}

/// One SAE being trained.
pub(crate) struct Member {
    pub spec: RunSpec,
    pub trainer: Trainer,
    pub res: Resolved,
    /// Step of the trainer when this invocation started.
    pub start_step: u64,
    pub last: Option<StepMetrics>,
    log: File,
    metrics_path: PathBuf,
    _lock: OutputLock,
}

impl Member {
    /// Locks `spec.out`, checks it, and starts the run there (initialised from a sample of `source`)
    /// or resumes it.
    pub fn open(spec: &RunSpec, info: &DataInfo, source: &mut dyn BatchSource) -> Result<Member> {
        let out = &spec.out;
        let cfg = &spec.cfg;
        let res = resolve_for(cfg, info)?;
        let lock = OutputLock::acquire(out, LOCK_COMMAND)?;
        check_out_folder(out, spec.resume)?;
        sae_store::atomic_write(&out.join(CONFIG_FILE), cfg.to_toml().as_bytes())?;
        let metrics_path = out.join(METRICS_FILE);
        let trainer = if spec.resume {
            let state = checkpoint::load(out, cfg, &res)?;
            truncate_metrics(&metrics_path, state.step)?;
            Trainer::from_state(cfg.clone(), res, state, spec.backend)
        } else {
            let _ = std::fs::remove_file(&metrics_path);
            let sample = source.init_sample(cfg.init_sample_rows, cfg.seed ^ INIT_SEED_XOR)?;
            Trainer::new(cfg.clone(), res, &sample, spec.backend)?
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&metrics_path)
            .map_err(io_err(&metrics_path))?;
        Ok(Member {
            spec: spec.clone(),
            start_step: trainer.state.step,
            trainer,
            res,
            last: None,
            log,
            metrics_path,
            _lock: lock,
        })
    }

    /// The next stream position this member consumes (= steps completed).
    pub fn position(&self) -> u64 {
        self.trainer.state.step
    }

    /// True once every configured step has run.
    pub fn done(&self) -> bool {
        self.trainer.done()
    }

    /// One step on `batch` (raw rows, scaled in place), then its metrics line and checkpoint;
    /// `seconds` is the time since this invocation's step loop began. `source`'s position is made
    /// durable before a checkpoint.
    pub fn step(
        &mut self,
        batch: &mut [f32],
        seconds: f64,
        source: &mut dyn BatchSource,
    ) -> Result<Stepped> {
        let m = self.trainer.step(batch)?;
        let cfg = &self.spec.cfg;
        let done = self.trainer.state.step - self.start_step;
        let rows_per_s = (done * cfg.batch as u64) as f64 / seconds.max(1e-9);
        if cfg.log_every > 0 && (m.step % cfg.log_every == 0 || self.trainer.done()) {
            let mut v = serde_json::to_value(&m).map_err(|e| TrainError::Invalid(e.to_string()))?;
            v["rows_per_s"] = serde_json::json!(rows_per_s.round());
            writeln!(self.log, "{v}").map_err(io_err(&self.metrics_path))?;
        }
        let checkpoint =
            cfg.checkpoint_every > 0 && m.step % cfg.checkpoint_every == 0 && !self.trainer.done();
        if checkpoint {
            source.persist()?;
            checkpoint::save(&self.spec.out, cfg, &self.trainer.state)?;
        }
        self.last = Some(m.clone());
        Ok(Stepped {
            metrics: m,
            rows_per_s,
            checkpoint,
        })
    }

    /// Saves the SAE (SAELens folder; sparsify's for a TopK transcoder) and removes the checkpoint; the lock goes with `self`.
    pub fn finish(self, data: &DataInfo) -> Result<()> {
        let out = &self.spec.out;
        let mut meta = metadata(&data.source, &data.path);
        if let Some(h) = &data.hook_out {
            meta.extra
                .insert(sae_model::HOOK_NAME_OUT.into(), serde_json::json!(h));
        }
        let sae = self.trainer.to_sae(meta)?;
        sae.save(out, Some(&self.trainer.state.dead.log10_density()))?;
        let ckdir = out.join(CHECKPOINT_DIR);
        if ckdir.exists() {
            std::fs::remove_dir_all(&ckdir).map_err(io_err(&ckdir))?;
        }
        Ok(())
    }
}
