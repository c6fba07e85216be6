//! `sae hooks`: list the hook points a model offers, with their widths.

use std::fmt::Write as _;
use std::io::Write as _;

use super::harvest::ModelArgs;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Print JSON instead of one hook per line.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (resolved, model) = args.model.load()?;
    let dims = model.dims();
    let hooks: Vec<(String, usize)> = model
        .hooks()
        .into_iter()
        .map(|h| (h.name(), model.width(h)))
        .collect();
    let mut out = String::new();
    if args.json {
        let value = serde_json::json!({
            "model": resolved.id,
            "revision": resolved.revision,
            "architecture": model.arch(),
            "n_layers": dims.n_layers,
            "d_model": dims.d_model,
            "d_mlp": dims.d_mlp,
            "vocab_size": dims.vocab_size,
            "hooks": hooks.iter().map(|(name, width)| serde_json::json!({"name": name, "width": width})).collect::<Vec<_>>(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        writeln!(
            out,
            "# {} ({}, {} layers, d_model {}, d_mlp {})",
            resolved.id,
            model.arch(),
            dims.n_layers,
            dims.d_model,
            dims.d_mlp
        )?;
        for (name, width) in hooks {
            writeln!(out, "{name}\t{width}")?;
        }
    }
    // A closed pipe (`sae hooks ... | head`) is not an error.
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
