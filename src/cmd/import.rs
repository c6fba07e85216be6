//! `sae import`: activations computed elsewhere (`.npy` / `.safetensors`) into an activation
//! store that `sae train`, `sae eval` and `sae report` read like a harvested one.

use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use sae_store::{DType, HeldOut, ImportSpec, OutputLock};

/// Import activations from .npy / .safetensors files into a store.
#[derive(clap::Args)]
pub struct Args {
    /// An activation file: .npy, or .safetensors (see --key), of shape [rows, d] or [.., d]
    /// (leading axes become rows). Repeat for several files, read in order.
    #[arg(long = "input", required = true)]
    inputs: Vec<PathBuf>,
    /// The tensor to read from safetensors inputs (needed when a file holds several).
    #[arg(long)]
    key: Option<String>,
    /// Token ids of the rows (integers, any shape with one value per row): one file per
    /// --input, in the same order.
    #[arg(long = "token-ids")]
    token_ids: Vec<PathBuf>,
    /// The token id tensor, in the --token-ids files or, without them, in each safetensors input.
    #[arg(long)]
    token_ids_key: Option<String>,
    /// Output store folder.
    #[arg(long)]
    out: PathBuf,
    /// On-disk dtype: f32, f16 or bf16 [default: f16 / bf16 when every input is, else f32].
    #[arg(long, value_parser = super::parse_dtype)]
    dtype: Option<DType>,
    /// Fraction of rows (the last ones) held out for evaluation.
    #[arg(long, default_value_t = 0.05, conflicts_with = "eval_rows")]
    eval_frac: f64,
    /// Exactly this many rows (the last ones) held out instead.
    #[arg(long)]
    eval_rows: Option<u64>,
    /// Rows per shard file.
    #[arg(long, default_value_t = 16384)]
    shard_rows: usize,
    /// The model the activations came from (recorded; `sae report` reads its tokenizer).
    #[arg(long)]
    model: Option<String>,
    /// The hook point they were taken at (recorded).
    #[arg(long)]
    hook: Option<String>,
    /// Continue an interrupted import of the same files in --out.
    #[arg(long)]
    resume: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let spec = ImportSpec {
        inputs: args.inputs,
        key: args.key,
        token_ids: args.token_ids,
        token_ids_key: args.token_ids_key,
        dtype: args.dtype,
        shard_rows: args.shard_rows,
        held_out: match args.eval_rows {
            Some(n) => HeldOut::Rows(n),
            None => HeldOut::Fraction(args.eval_frac),
        },
        model_id: args.model,
        hook: args.hook,
        resume: args.resume,
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let _lock = OutputLock::acquire(&args.out, "sae import")
        .with_context(|| format!("cannot write into {}", args.out.display()))?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} rows  {per_sec}  eta {eta}")
            .expect("static progress template"),
    );
    let start = std::time::Instant::now();
    let m = sae_store::import(&args.out, &spec, &mut |rows, total| {
        bar.set_length(total);
        bar.set_position(rows);
    })
    .with_context(|| format!("importing into {}", args.out.display()))?;
    bar.finish_and_clear();
    println!(
        "imported {} rows (d = {}, {}, {} held out, {} shards) from {} file(s) into {} in {:.1}s",
        m.rows,
        m.d,
        format!("{:?}", m.dtype).to_lowercase(),
        m.eval_rows,
        m.shards.len(),
        spec.inputs.len(),
        args.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
