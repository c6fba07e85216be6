//! `sae bench harvest`: tokens/s of the harvest forward pass (to the last block, plus the host copy of its
//! residual stream) for the packaged MiniLM (batch 32 x 128 tokens) and SmolLM2 GGUF (dequantized to f32),
//! next to the model's FLOPs per token and the f32 GEMM rate measured in the same run (the matmul limit).
//! `--corpus DIR` also times the whole `sae harvest` pipeline against the forward pass alone.

use std::time::Instant;

use anyhow::Context as _;
use candle_core::{Device, Tensor};
mod pipeline;

use sae_lm::{gemm_linear, resolve_model, Capture, Hook, HookPoint, Model, ModelSpec};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Timed forward passes per model after one warm-up pass (the best one counts).
    #[arg(long, default_value_t = 3)]
    iters: usize,
    /// Also time the plain candle forward (the reference path).
    #[arg(long)]
    reference: bool,
    /// Only models whose id contains this.
    #[arg(long)]
    only: Option<String>,
    /// Hugging Face hub cache holding the packaged models (default: $SAE_HF_CACHE, else hf-hub's default).
    #[arg(long)]
    cache_dir: Option<std::path::PathBuf>,
    /// Corpus folder: also time `sae harvest` end to end (tokenize, forward, store) against the forward
    /// pass alone over the same contexts and layers.
    #[arg(long)]
    corpus: Option<std::path::PathBuf>,
    /// Rows per model for the `--corpus` comparison (default: 30000 for MiniLM, 5000 for SmolLM2).
    #[arg(long)]
    corpus_tokens: Option<u64>,
}

/// One measured case.
#[derive(serde::Serialize)]
pub struct Case {
    pub model: String,
    pub batch: usize,
    pub ctx_len: usize,
    pub layers: usize,
    pub tokens_per_s: f64,
    pub seconds_per_batch: f64,
    /// Multiply-add FLOPs per token at this context length and depth.
    pub flops_per_token: f64,
    /// f32 GEMM rate of the model's MLP-up shape at this batch (best of runs just before and just after).
    pub gemm_gflops: f64,
    /// tokens/s the GEMM rate allows (gemm_gflops * 1e9 / flops_per_token).
    pub limit_tokens_per_s: f64,
    /// tokens_per_s / limit_tokens_per_s.
    pub fraction_of_limit: f64,
    /// Seconds per batch of a pass that stops after block n_layers / 2 - 1 (a hook halfway down) over the
    /// seconds of the full pass: the forward runs only as deep as the last hooked layer.
    pub half_depth_cost: f64,
    /// tokens/s of the plain candle forward (`--reference`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_tokens_per_s: Option<f64>,
    /// `--corpus`: the whole harvest against the forward pass alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<pipeline::Pipeline>,
}

pub fn load(
    cache_dir: &Option<std::path::PathBuf>,
    id: &str,
) -> anyhow::Result<(sae_lm::ResolvedModel, Model)> {
    let spec = ModelSpec {
        id_or_path: id.into(),
        revision: None,
        offline: true,
        cache_dir: cache_dir.clone(),
    };
    let resolved = resolve_model(&spec)
        .with_context(|| format!("cannot resolve `{id}` (run scripts/fetch-models.sh)"))?;
    let model =
        Model::load(&resolved, &Device::Cpu).with_context(|| format!("cannot load `{id}`"))?;
    Ok((resolved, model))
}

/// GFLOP/s of x [n, k] w [k, m] through the same gemm call the fast path makes (best of a few).
pub fn gemm_rate(n: usize, k: usize, m: usize) -> f64 {
    let x: Vec<f32> = (0..n * k)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.1)
        .collect();
    let w: Vec<f32> = (0..k * m)
        .map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.1)
        .collect();
    let b = vec![0.5f32; m];
    let mut best = f64::INFINITY;
    for _ in 0..10 {
        let t = Instant::now();
        let y = gemm_linear(&x, &w, Some(&b), k, m);
        std::hint::black_box(&y);
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (n * k * m) as f64 / best / 1e9
}

fn time_forward(
    model: &Model,
    ids: &Tensor,
    lengths: &[usize],
    hook: Hook,
    iters: usize,
    reference: bool,
) -> anyhow::Result<f64> {
    let d = model.width(hook);
    let run = || -> anyhow::Result<()> {
        let mut cap = Capture::new(&[hook]);
        if reference {
            model.forward_reference(ids, lengths, &mut cap)?;
        } else {
            model.forward(ids, lengths, &mut cap)?;
        }
        let act = cap.get(hook).context("no activation captured")?;
        let host: Vec<f32> = act.flatten_all()?.to_vec1()?;
        anyhow::ensure!(host.len() == ids.elem_count() * d, "wrong activation size");
        Ok(())
    };
    run()?;
    // Best of `iters` passes: other work on a shared machine only ever slows a pass down.
    let mut best = f64::INFINITY;
    for _ in 0..iters {
        let start = Instant::now();
        run()?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn bench(
    args: &Args,
    id: &str,
    batch: usize,
    ctx_len: usize,
    pipeline_layer: usize,
    pipeline_rows: u64,
) -> anyhow::Result<Case> {
    let (resolved, model) = load(&args.cache_dir, id)?;
    let dims = model.dims();
    // Deterministic token ids spread over the vocabulary (speed does not depend on which ids).
    let ids: Vec<u32> = (0..batch * ctx_len)
        .map(|i| ((i as u64 * 7919 + 13) % dims.vocab_size as u64) as u32)
        .collect();
    let ids = Tensor::from_vec(ids, (batch, ctx_len), &Device::Cpu)?;
    let lengths = vec![ctx_len; batch];
    let hook = Hook::new(dims.n_layers - 1, HookPoint::ResidPost);
    let iters = args.iters.max(1);
    let mlp_cols = if model.arch() == "llama" {
        2 * dims.d_mlp
    } else {
        dims.d_mlp
    };
    // The GEMM rate before and after the timed passes; the higher one sets the limit.
    let gemm_before = gemm_rate(batch * ctx_len, dims.d_model, mlp_cols);
    let secs = time_forward(&model, &ids, &lengths, hook, iters, false)?;
    let gemm_gflops = gemm_before.max(gemm_rate(batch * ctx_len, dims.d_model, mlp_cols));
    let half = Hook::new((dims.n_layers / 2).max(1) - 1, HookPoint::ResidPost);
    let half_depth_cost = time_forward(&model, &ids, &lengths, half, iters, false)? / secs;
    let reference_tokens_per_s = if args.reference {
        let s = time_forward(&model, &ids, &lengths, hook, iters, true)?;
        Some((batch * ctx_len) as f64 / s)
    } else {
        None
    };
    let flops_per_token = model.flops_per_token(ctx_len, dims.n_layers);
    let tokens_per_s = (batch * ctx_len) as f64 / secs;
    let limit = gemm_gflops * 1e9 / flops_per_token;
    let pipeline = match &args.corpus {
        Some(dir) => Some(pipeline::run(
            &resolved,
            &model,
            dir,
            Hook::new(pipeline_layer.min(dims.n_layers - 1), HookPoint::ResidPost),
            batch,
            ctx_len,
            args.corpus_tokens.unwrap_or(pipeline_rows),
        )?),
        None => None,
    };
    Ok(Case {
        model: id.into(),
        batch,
        ctx_len,
        layers: dims.n_layers,
        tokens_per_s,
        seconds_per_batch: secs,
        flops_per_token,
        gemm_gflops,
        limit_tokens_per_s: limit,
        fraction_of_limit: tokens_per_s / limit,
        half_depth_cost,
        reference_tokens_per_s,
        pipeline,
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut cases = Vec::new();
    // (model, batch, context, layer whose resid_post `--corpus` harvests, rows it harvests)
    for (id, batch, ctx, layer, rows) in [
        ("sentence-transformers/all-MiniLM-L6-v2", 32, 128, 5, 30_000),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", 8, 128, 15, 5_000),
    ] {
        if args.only.as_deref().is_none_or(|o| id.contains(o)) {
            cases.push(bench(&args, id, batch, ctx, layer, rows)?);
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&cases)?);
        return Ok(());
    }
    for c in &cases {
        println!(
            "{:<40} batch {:>3} x {:>4} tokens, {:>2} layers: {:>7.0} tokens/s ({:.3} s/batch); {:.1} MFLOP/token, \
             gemm {:.0} GFLOP/s -> limit {:.0} tokens/s, {:.2} of it",
            c.model, c.batch, c.ctx_len, c.layers, c.tokens_per_s, c.seconds_per_batch,
            c.flops_per_token / 1e6, c.gemm_gflops, c.limit_tokens_per_s, c.fraction_of_limit
        );
        println!(
            "{:<40} to block {} of {} only: {:.2} of the full pass's time",
            "",
            c.layers / 2,
            c.layers,
            c.half_depth_cost
        );
        if let Some(r) = c.reference_tokens_per_s {
            println!(
                "{:<40} reference (plain candle) forward: {r:>7.0} tokens/s",
                ""
            );
        }
        if let Some(p) = &c.pipeline {
            println!("{:<40} {}", "", p.describe());
        }
    }
    Ok(())
}
