//! `sae bench train`: rows/s of the whole training step (forward, hand-derived backward, AuxK,
//! Adam, decoder projection) of every architecture at the shapes users train, next to a plain f32
//! matmul of the encoder's shape measured in the same run; with `--store`, the whole `sae train`
//! loop reading that store from disk next to the in-memory step at the same shape.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use candle_core::{Device, Tensor};
use sae_train::kernels::{matmul_into, pre_acts, Mat};
use sae_train::{ArchConfig, ArchKind, Backend, TrainConfig, Trainer};

#[derive(clap::Args)]
pub struct Args {
    /// Minimum timed steps per case (after two warm-up steps; about 4 s of steps otherwise).
    #[arg(long, default_value_t = 5)]
    steps: u64,
    /// Only these architectures (default: all four).
    #[arg(long, value_delimiter = ',')]
    arch: Vec<String>,
    /// Leave out the GPT-2-small research shape (768 -> 24576), the slowest.
    #[arg(long)]
    small: bool,
    /// Only the shapes with these input widths (128, 384, 768; default: all three).
    #[arg(long, value_delimiter = ',')]
    d_in: Vec<usize>,
    /// Fraction of latents made dead (encoder columns shrunk, marked dead) so that AuxK runs.
    #[arg(long, default_value_t = 0.05)]
    dead_frac: f64,
    /// Time the whole `sae train` loop on this store (TopK, k 32, 16x latents) instead.
    #[arg(long)]
    store: Option<PathBuf>,
    /// Steps of the `--store` run.
    #[arg(long, default_value_t = 60)]
    store_steps: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Rows per batch of every benchmark (the `--store` run too).
pub(super) const BATCH: usize = 4096;
const SHAPES: [(usize, usize, usize); 3] = [(128, 1024, 5), (384, 6144, 32), (768, 24576, 32)];

/// One measured case.
#[derive(serde::Serialize)]
struct Row {
    arch: String,
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
    l0: f64,
    dead_frac: f64,
    auxk_loss: f64,
}

fn random(rows: usize, cols: usize) -> anyhow::Result<Vec<f32>> {
    Ok(Tensor::randn(0f32, 1f32, (rows, cols), &Device::Cpu)?
        .flatten_all()?
        .to_vec1()?)
}

/// The encoder-shaped matmul [batch, d_in] x [d_in, d_sae] of the same run.
struct Matmul {
    x: Vec<f32>,
    w: Vec<f32>,
    out: Vec<f32>,
    d_in: usize,
    d_sae: usize,
}

impl Matmul {
    fn new(x: &[f32], d_in: usize, d_sae: usize) -> anyhow::Result<Matmul> {
        Ok(Matmul {
            x: x.to_vec(),
            w: random(d_in, d_sae)?,
            out: vec![0f32; BATCH * d_sae],
            d_in,
            d_sae,
        })
    }

    /// Seconds of one call.
    fn time(&mut self) -> f64 {
        let t0 = Instant::now();
        matmul_into(
            &mut self.out,
            Mat::new(&self.x, BATCH, self.d_in),
            Mat::new(&self.w, self.d_in, self.d_sae),
            false,
        );
        t0.elapsed().as_secs_f64()
    }
}

/// The trainer in a state users meet: a `dead_frac` share of latents dead (encoder columns shrunk
/// so they stay out of the TopK, marked dead so AuxK runs); ReLU-L1 and JumpReLU with their bias
/// or threshold set so that about 2k latents fire per row.
fn prepared(
    kind: ArchKind,
    shape: (usize, usize, usize),
    x: &[f32],
    dead_frac: f64,
) -> anyhow::Result<Trainer> {
    let (d_in, d_sae, k) = shape;
    let cfg = TrainConfig {
        arch: ArchConfig::default_for(kind, Some(k)),
        d_sae: Some(d_sae),
        batch: BATCH,
        steps: 1_000_000,
        ..TrainConfig::default()
    };
    let res = cfg.resolve(d_in)?;
    let mut t = Trainer::new(cfg, res, x, Backend::Fast)?;
    let p = &mut t.state.params;
    let n_dead = (dead_frac * d_sae as f64).round() as usize;
    let stride = (d_sae / n_dead.max(1)).max(1);
    for j in (0..d_sae).step_by(stride).take(n_dead) {
        (0..d_in).for_each(|i| p.w_enc[i * d_sae + j] *= 0.1);
        t.state.dead.since[j] = t.state.dead.window;
    }
    if matches!(kind, ArchKind::ReluL1 | ArchKind::JumpRelu) {
        let scaled: Vec<f32> = x.iter().map(|v| v * t.state.scale).collect();
        let (_, mut z) = pre_acts(&scaled, &t.state.params);
        let at = z.len() - (z.len() as f64 * 2.0 * k as f64 / d_sae as f64) as usize;
        let (_, q, _) = z.select_nth_unstable_by(at, |a, b| a.total_cmp(b));
        let q = q.max(1e-3);
        let p = &mut t.state.params;
        match p.log_threshold.as_mut() {
            Some(lt) => lt.iter_mut().for_each(|v| *v = q.ln()),
            None => p.b_enc.iter_mut().for_each(|v| *v -= q),
        }
    }
    Ok(t)
}

/// Steps and matmuls alternate and each step is divided by the matmul right after it: on a shared
/// machine both then see the same load. Reported: medians of the times and of those ratios.
fn measure(
    kind: ArchKind,
    shape: (usize, usize, usize),
    x: &[f32],
    min_steps: u64,
    dead_frac: f64,
) -> anyhow::Result<Row> {
    let (d_in, d_sae, k) = shape;
    let mut t = prepared(kind, shape, x, dead_frac)?;
    let mut mm = Matmul::new(x, d_in, d_sae)?;
    let mut buf = x.to_vec();
    let mut step = |t: &mut Trainer| -> anyhow::Result<(f64, sae_train::StepMetrics)> {
        buf.copy_from_slice(x);
        let t0 = Instant::now();
        let m = t.step(&mut buf)?;
        Ok((t0.elapsed().as_secs_f64(), m))
    };
    step(&mut t)?;
    mm.time();
    let (once, _) = step(&mut t)?;
    // About 4 s of steps, at most 100 unless `--steps` asks for more.
    let steps = ((4.0 / once.max(1e-6)) as u64)
        .min(100)
        .max(min_steps.max(1));
    let (mut steps_s, mut mms_s) = (Vec::new(), Vec::new());
    let mut last = None;
    for _ in 0..steps {
        let (s, m) = step(&mut t)?;
        steps_s.push(s);
        mms_s.push(mm.time());
        last = Some(m);
    }
    let mut ratios: Vec<f64> = steps_s.iter().zip(&mms_s).map(|(s, m)| s / m).collect();
    let (step_s, mm_s, ratio) = (
        median(&mut steps_s),
        median(&mut mms_s),
        median(&mut ratios),
    );
    let m = last.expect("at least one step");
    Ok(Row {
        arch: ArchConfig::default_for(kind, Some(k)).name().to_string(),
        d_in,
        d_sae,
        k,
        batch: BATCH,
        steps,
        step_ms: step_s * 1e3,
        rows_per_s: BATCH as f64 / step_s,
        matmul_ms: mm_s * 1e3,
        matmul_gflops: 2.0 * (BATCH * d_in * d_sae) as f64 / mm_s / 1e9,
        step_over_matmul: ratio,
        l0: m.l0,
        dead_frac: m.dead_frac,
        auxk_loss: if matches!(kind, ArchKind::TopK | ArchKind::BatchTopK) {
            m.aux
        } else {
            0.0
        },
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn kinds(names: &[String]) -> anyhow::Result<Vec<ArchKind>> {
    let all = [
        ArchKind::TopK,
        ArchKind::BatchTopK,
        ArchKind::ReluL1,
        ArchKind::JumpRelu,
    ];
    if names.is_empty() {
        return Ok(all.to_vec());
    }
    names
        .iter()
        .map(|n| {
            all.iter()
                .copied()
                .find(|k| ArchConfig::default_for(*k, None).name() == n.as_str())
                .with_context(|| {
                    format!("unknown architecture {n:?} (topk, batchtopk, relu-l1, jumprelu)")
                })
        })
        .collect()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(store) = &args.store {
        return super::bench_train_store::run(store, args.store_steps, args.json);
    }
    let kinds = kinds(&args.arch)?;
    let mut rows = Vec::new();
    for shape in SHAPES
        .iter()
        .copied()
        .filter(|s| !(args.small && s.0 == 768))
        .filter(|s| args.d_in.is_empty() || args.d_in.contains(&s.0))
    {
        let x = random(BATCH, shape.0)?;
        for &kind in &kinds {
            rows.push(measure(kind, shape, &x, args.steps, args.dead_frac)?);
        }
    }
    let threads = candle_core::utils::get_num_threads();
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "threads": threads, "results": rows })
        );
        return Ok(());
    }
    println!(
        "training step vs encoder matmul [{BATCH}, d_in] x [d_in, d_sae], alternating in one run (medians of the times and of step/next-matmul ratios); {threads} threads; {:.0}% of latents dead",
        args.dead_frac * 100.0
    );
    println!(
        "{:>9} {:>5} {:>6} {:>3} {:>9} {:>9} {:>9} {:>8} {:>6} {:>6}",
        "arch", "d_in", "d_sae", "k", "step ms", "rows/s", "matmul ms", "GFLOP/s", "ratio", "l0"
    );
    for r in &rows {
        println!(
            "{:>9} {:>5} {:>6} {:>3} {:>9.1} {:>9.0} {:>9.1} {:>8.1} {:>6.2} {:>6.1}",
            r.arch,
            r.d_in,
            r.d_sae,
            r.k,
            r.step_ms,
            r.rows_per_s,
            r.matmul_ms,
            r.matmul_gflops,
            r.step_over_matmul,
            r.l0
        );
    }
    Ok(())
}
