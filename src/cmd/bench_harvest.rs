//! `sae bench harvest`: tokens/s of the harvest forward pass (to the last block, plus the host copy of its
//! residual stream) for the packaged MiniLM (batch 32 x 128 tokens) and SmolLM2 GGUF (dequantized to f32).

use std::time::Instant;

use anyhow::Context as _;
use candle_core::{Device, Tensor};
use sae_harvest::{resolve_model, Capture, Hook, HookPoint, Model, ModelSpec};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Timed forward passes per model (after one warm-up pass).
    #[arg(long, default_value_t = 3)]
    iters: usize,
    /// Hugging Face hub cache holding the packaged models (default: $SAE_HF_CACHE, else hf-hub's default).
    #[arg(long)]
    cache_dir: Option<std::path::PathBuf>,
}

/// One measured case.
#[derive(serde::Serialize)]
struct Case {
    model: String,
    batch: usize,
    ctx_len: usize,
    layers: usize,
    tokens_per_s: f64,
    seconds_per_batch: f64,
}

fn bench(args: &Args, id: &str, batch: usize, ctx_len: usize) -> anyhow::Result<Case> {
    let spec = ModelSpec {
        id_or_path: id.into(),
        revision: None,
        offline: true,
        cache_dir: args.cache_dir.clone(),
    };
    let resolved = resolve_model(&spec)
        .with_context(|| format!("cannot resolve `{id}` (run scripts/fetch-models.sh)"))?;
    let model =
        Model::load(&resolved, &Device::Cpu).with_context(|| format!("cannot load `{id}`"))?;
    let dims = model.dims();
    // Deterministic token ids spread over the vocabulary (speed does not depend on which ids).
    let ids: Vec<u32> = (0..batch * ctx_len)
        .map(|i| ((i as u64 * 7919 + 13) % dims.vocab_size as u64) as u32)
        .collect();
    let ids = Tensor::from_vec(ids, (batch, ctx_len), &Device::Cpu)?;
    let lengths = vec![ctx_len; batch];
    let hook = Hook::new(dims.n_layers - 1, HookPoint::ResidPost);
    let run = || -> anyhow::Result<()> {
        let mut cap = Capture::new(&[hook]);
        model.forward(&ids, &lengths, &mut cap)?;
        let act = cap.get(hook).context("no activation captured")?;
        let host: Vec<f32> = act.flatten_all()?.to_vec1()?;
        anyhow::ensure!(
            host.len() == batch * ctx_len * dims.d_model,
            "wrong activation size"
        );
        Ok(())
    };
    run()?;
    let iters = args.iters.max(1);
    let start = Instant::now();
    for _ in 0..iters {
        run()?;
    }
    let secs = start.elapsed().as_secs_f64() / iters as f64;
    Ok(Case {
        model: id.into(),
        batch,
        ctx_len,
        layers: dims.n_layers,
        tokens_per_s: (batch * ctx_len) as f64 / secs,
        seconds_per_batch: secs,
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cases = vec![
        bench(&args, "sentence-transformers/all-MiniLM-L6-v2", 32, 128)?,
        bench(&args, "HuggingFaceTB/SmolLM2-135M-Instruct", 8, 128)?,
    ];
    if args.json {
        println!("{}", serde_json::to_string_pretty(&cases)?);
    } else {
        for c in &cases {
            println!(
                "{:<42} batch {:>3} x {:>4} tokens, {:>2} layers: {:>8.0} tokens/s ({:.3} s/batch)",
                c.model, c.batch, c.ctx_len, c.layers, c.tokens_per_s, c.seconds_per_batch
            );
        }
    }
    Ok(())
}
