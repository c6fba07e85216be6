//! A whole training run on an activation store: output-folder checks, initialisation or resume,
//! the step loop over seeded shuffled batches, metrics.jsonl, periodic checkpoints, the saved SAE.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sae_store::{ShuffleOptions, Split, Store};

use crate::checkpoint::{self, checkpoint_path, CHECKPOINT_DIR};
use crate::config::{Resolved, TrainConfig};
use crate::error::{io_err, Result, TrainError};
use crate::export::metadata;
use crate::trainer::{Backend, StepMetrics, Trainer};

/// Metrics file (one JSON object per logged step) inside the SAE folder.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// The resolved config of the run, saved in the SAE folder.
pub const CONFIG_FILE: &str = "train_config.toml";
/// Seed offset of the sample used for initialisation (independent of the training stream).
const INIT_SEED_XOR: u64 = 0x1417_5EED;

/// What to train, from where, to where.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// Activation store folder.
    pub store: PathBuf,
    /// Output SAE folder.
    pub out: PathBuf,
    /// Settings.
    pub cfg: TrainConfig,
    /// Continue the interrupted run in `out` from its checkpoint.
    pub resume: bool,
    /// Gradient implementation.
    pub backend: Backend,
}

/// Progress callbacks (the CLI draws a progress bar).
pub trait Observer {
    /// Called once before the first step; `start` > 0 when resuming.
    fn begin(&mut self, _total: u64, _start: u64, _res: &Resolved) {}
    /// Called after every step with the throughput since the (re)start.
    fn step(&mut self, _m: &StepMetrics, _rows_per_s: f64) {}
    /// Called with occasional notes (checkpoint written, SAE saved).
    fn note(&mut self, _msg: &str) {}
}

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// Metrics of the last step.
    pub last: Option<StepMetrics>,
    /// Steps run in this invocation.
    pub steps_run: u64,
    /// Wall-clock seconds of the step loop in this invocation.
    pub seconds: f64,
    /// Rows per second of the step loop (data reading included).
    pub rows_per_s: f64,
    /// Sizes used.
    pub res: Resolved,
}

fn check_out_folder(out: &Path, resume: bool) -> Result<()> {
    let weights = out.join("sae_weights.safetensors").exists();
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

/// Trains (or resumes) the run described by `spec`, saving the SAE into `spec.out`.
pub fn train(spec: &RunSpec, obs: &mut dyn Observer) -> Result<RunSummary> {
    let store = Store::open(&spec.store)?;
    let cfg = &spec.cfg;
    let res = cfg.resolve(store.d())?;
    let out = &spec.out;
    check_out_folder(out, spec.resume)?;
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    sae_store::atomic_write(&out.join(CONFIG_FILE), cfg.to_toml().as_bytes())?;
    let metrics_path = out.join(METRICS_FILE);
    let mut trainer = if spec.resume {
        let state = checkpoint::load(out, cfg, &res)?;
        truncate_metrics(&metrics_path, state.step)?;
        Trainer::from_state(cfg.clone(), res, state, spec.backend)
    } else {
        let _ = std::fs::remove_file(&metrics_path);
        let train_rows = store.split_rows(Split::Train);
        let n = (cfg.init_sample_rows as u64).min(train_rows).max(1) as usize;
        let sample = store
            .shuffled(
                Split::Train,
                ShuffleOptions {
                    batch: n,
                    buffer_rows: cfg.shuffle_buffer_rows(store.d()).max(n),
                    seed: cfg.seed ^ INIT_SEED_XOR,
                },
            )
            .next_batch()?;
        Trainer::new(cfg.clone(), res, &sample, spec.backend)?
    };
    let mut data = store.shuffled(
        Split::Train,
        ShuffleOptions {
            batch: cfg.batch,
            buffer_rows: cfg.shuffle_buffer_rows(store.d()),
            seed: cfg.seed,
        },
    );
    data.skip_batches(trainer.state.step)?;
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&metrics_path)
        .map_err(io_err(&metrics_path))?;
    let start_step = trainer.state.step;
    obs.begin(cfg.steps, start_step, &res);
    let t0 = Instant::now();
    let mut last = None;
    let mut batch = vec![0f32; cfg.batch * store.d()];
    while !trainer.done() {
        data.next_batch_into(&mut batch)?;
        let m = trainer.step(&mut batch)?;
        let done = trainer.state.step - start_step;
        let rows_per_s = (done * cfg.batch as u64) as f64 / t0.elapsed().as_secs_f64().max(1e-9);
        obs.step(&m, rows_per_s);
        if cfg.log_every > 0 && (m.step % cfg.log_every == 0 || trainer.done()) {
            let mut v = serde_json::to_value(&m).map_err(|e| TrainError::Invalid(e.to_string()))?;
            v["rows_per_s"] = serde_json::json!(rows_per_s.round());
            writeln!(log, "{v}").map_err(io_err(&metrics_path))?;
        }
        if cfg.checkpoint_every > 0 && m.step % cfg.checkpoint_every == 0 && !trainer.done() {
            checkpoint::save(out, cfg, &trainer.state)?;
            obs.note(&format!("checkpoint at step {}", m.step));
        }
        last = Some(m);
    }
    let seconds = t0.elapsed().as_secs_f64();
    let steps_run = trainer.state.step - start_step;
    let store_path = spec.store.to_string_lossy().to_string();
    let sae = trainer.to_sae(metadata(&store.manifest().source, &store_path))?;
    sae.save(out, Some(&trainer.state.dead.log10_density()))?;
    let ckdir = out.join(CHECKPOINT_DIR);
    if ckdir.exists() {
        std::fs::remove_dir_all(&ckdir).map_err(io_err(&ckdir))?;
    }
    obs.note(&format!("saved SAE to {}", out.display()));
    Ok(RunSummary {
        last,
        steps_run,
        seconds,
        rows_per_s: (steps_run * cfg.batch as u64) as f64 / seconds.max(1e-9),
        res,
    })
}
