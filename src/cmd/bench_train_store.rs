//! `sae bench train --store DIR`: the whole `sae train` loop (shuffled reads from disk, decoding,
//! the step) on a real store, next to the in-memory step at the same shape in the same run.

use std::path::Path;
use std::time::Instant;

use sae_store::{ShuffleOptions, Split, Store};
use sae_train::{ArchConfig, ArchKind, Backend, Observer, RunSpec, TrainConfig, Trainer};

use super::bench_train::BATCH;

const K: usize = 32;

struct Quiet;
impl Observer for Quiet {}

/// Batches held in memory for the reference run.
const MEM_BATCHES: usize = 16;

/// Rows/s of `steps` steps from a fresh trainer over batches of the store already in memory.
fn in_memory(store: &Store, cfg: &TrainConfig, steps: u64) -> anyhow::Result<f64> {
    let mut data = store.shuffled(
        Split::Train,
        ShuffleOptions {
            batch: BATCH,
            buffer_rows: cfg.shuffle_buffer_rows(store.d()),
            seed: cfg.seed ^ 0xBE4C,
        },
    );
    let batches: Vec<Vec<f32>> = (0..MEM_BATCHES)
        .map(|_| data.next_batch())
        .collect::<Result<_, _>>()?;
    let sample: Vec<f32> = batches[..4].concat();
    let mut t = Trainer::new(cfg.clone(), cfg.resolve(store.d())?, &sample, Backend::Fast)?;
    let mut buf = vec![0f32; BATCH * store.d()];
    let t0 = Instant::now();
    for s in 0..steps as usize {
        buf.copy_from_slice(&batches[s % MEM_BATCHES]);
        t.step(&mut buf)?;
    }
    Ok((steps as usize * BATCH) as f64 / t0.elapsed().as_secs_f64())
}

pub fn run(store_dir: &Path, steps: u64, json: bool) -> anyhow::Result<()> {
    let store = Store::open(store_dir)?;
    let d_in = store.d();
    let cfg = TrainConfig {
        arch: ArchConfig::default_for(ArchKind::TopK, Some(K)),
        d_sae: Some(16 * d_in),
        batch: BATCH,
        steps,
        log_every: steps.max(1),
        checkpoint_every: 0,
        ..TrainConfig::default()
    };
    let out = std::env::temp_dir().join(format!("sae-bench-train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let spec = RunSpec {
        store: store_dir.to_path_buf(),
        target: None,
        out: out.clone(),
        cfg: cfg.clone(),
        resume: false,
        backend: Backend::Fast,
    };
    // The same run in memory first: the same config and step count (so the same schedule and
    // dead-latent dynamics, AuxK included) over batches of this store read before timing.
    let mem_rows_s = in_memory(&store, &cfg, steps)?;
    let summary = sae_train::train(&spec, &mut Quiet);
    let _ = std::fs::remove_dir_all(&out);
    let summary = summary?;
    let ratio = summary.rows_per_s / mem_rows_s;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "store": store_dir, "d_in": d_in, "d_sae": 16 * d_in, "k": K, "batch": BATCH,
                "steps": summary.steps_run, "train_rows_per_s": summary.rows_per_s,
                "in_memory_rows_per_s": mem_rows_s, "ratio": ratio,
            })
        );
    } else {
        println!(
            "sae train from {} (topk k {K}, {d_in} -> {}, batch {BATCH}, {} steps): {:.0} rows/s; in-memory step: {:.0} rows/s; ratio {:.2}",
            store_dir.display(),
            16 * d_in,
            summary.steps_run,
            summary.rows_per_s,
            mem_rows_s,
            ratio
        );
    }
    Ok(())
}
