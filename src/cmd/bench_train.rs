//! `sae bench train`: rows/s of the full training step (TopK, hand-derived sparse backward, Adam,
//! decoder projection) on random data, next to a plain matmul of the encoder's shape in the same run.

use std::time::Instant;

use candle_core::{Device, Tensor};
use sae_train::kernels::{matmul_into, Mat};
use sae_train::{ArchConfig, Backend, TrainConfig, Trainer};

#[derive(clap::Args)]
pub struct Args {
    /// Timed training steps per shape (after one warm-up step).
    #[arg(long, default_value_t = 20)]
    steps: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// One measured shape.
#[derive(serde::Serialize)]
struct Row {
    d_in: usize,
    d_sae: usize,
    k: usize,
    batch: usize,
    steps: u64,
    step_ms: f64,
    rows_per_s: f64,
    matmul_ms: f64,
    matmul_gflops: f64,
    step_over_matmul: f64,
}

fn random(rows: usize, cols: usize) -> anyhow::Result<Vec<f32>> {
    Ok(Tensor::randn(0f32, 1f32, (rows, cols), &Device::Cpu)?
        .flatten_all()?
        .to_vec1()?)
}

fn measure(d_in: usize, d_sae: usize, k: usize, batch: usize, steps: u64) -> anyhow::Result<Row> {
    let cfg = TrainConfig {
        arch: ArchConfig::TopK {
            k,
            auxk_coef: 1.0 / 32.0,
            k_aux: None,
        },
        d_sae: Some(d_sae),
        batch,
        steps: 1_000_000,
        ..TrainConfig::default()
    };
    let res = cfg.resolve(d_in)?;
    let data = random(batch, d_in)?;
    let mut trainer = Trainer::new(cfg, res, &data, Backend::Fast)?;
    let step = |t: &mut Trainer| -> anyhow::Result<()> {
        let mut b = data.clone();
        t.step(&mut b)?;
        Ok(())
    };
    step(&mut trainer)?;
    let t0 = Instant::now();
    for _ in 0..steps {
        step(&mut trainer)?;
    }
    let step_s = t0.elapsed().as_secs_f64() / steps as f64;
    let w = random(d_in, d_sae)?;
    let mut out = vec![0f32; batch * d_sae];
    let mm = |out: &mut [f32]| {
        matmul_into(
            out,
            Mat::new(&data, batch, d_in),
            Mat::new(&w, d_in, d_sae),
            false,
        )
    };
    mm(&mut out);
    let reps = (steps * 3).max(5);
    let t0 = Instant::now();
    for _ in 0..reps {
        mm(&mut out);
    }
    let mm_s = t0.elapsed().as_secs_f64() / reps as f64;
    Ok(Row {
        d_in,
        d_sae,
        k,
        batch,
        steps,
        step_ms: step_s * 1e3,
        rows_per_s: batch as f64 / step_s,
        matmul_ms: mm_s * 1e3,
        matmul_gflops: 2.0 * (batch * d_in * d_sae) as f64 / mm_s / 1e9,
        step_over_matmul: step_s / mm_s,
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let steps = args.steps.max(1);
    let mut rows = Vec::new();
    for (d_in, d_sae, k) in [(128, 1024, 5), (384, 6144, 32)] {
        rows.push(measure(d_in, d_sae, k, 4096, steps)?);
    }
    let threads = candle_core::utils::get_num_threads();
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "threads": threads, "results": rows })
        );
        return Ok(());
    }
    println!("training step (topk, sparse backward, Adam) vs encoder matmul [4096, d_in] x [d_in, d_sae]; {threads} threads");
    println!(
        "{:>5} {:>6} {:>3} {:>10} {:>12} {:>10} {:>10} {:>8}",
        "d_in", "d_sae", "k", "step ms", "rows/s", "matmul ms", "GFLOP/s", "ratio"
    );
    for r in &rows {
        println!(
            "{:>5} {:>6} {:>3} {:>10.2} {:>12.0} {:>10.2} {:>10.1} {:>8.2}",
            r.d_in,
            r.d_sae,
            r.k,
            r.step_ms,
            r.rows_per_s,
            r.matmul_ms,
            r.matmul_gflops,
            r.step_over_matmul
        );
    }
    Ok(())
}
