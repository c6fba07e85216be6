//! `sae`: harvest activations from pretrained transformers, train sparse autoencoders on them,
//! and report which latents became monosemantic.
//!
//! Only this binary knows clap. Each subcommand lives in `cmd/<name>.rs` with its own
//! `Args` (clap) and a `run(args) -> anyhow::Result<()>` that resolves the arguments into the
//! library crates' typed settings and adds context to their errors.

#[cfg(target_os = "linux")]
mod alloc;
mod cmd;

#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOC: alloc::HugePageAlloc = alloc::HugePageAlloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "sae", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole pipeline from one config: harvest -> train -> eval -> report (reruns skip what is done).
    Run(cmd::run::Args),
    /// Generate synthetic activations with known ground-truth features (superposition).
    Synth(cmd::synth::Args),
    /// Train a sparse autoencoder on an activation store.
    Train(cmd::train::Args),
    /// Evaluate an SAE on a store's held-out split, or spliced into its model (--model).
    Eval(cmd::eval::Args),
    /// Download a model from the Hugging Face hub into the local cache.
    Fetch(cmd::fetch::Args),
    /// List the hook points a model offers.
    Hooks(cmd::hooks::Args),
    /// Run a model over a corpus and store activations at hook points.
    Harvest(cmd::harvest::Args),
    /// Import activations computed elsewhere (.npy / .safetensors) into a store.
    Import(cmd::import::Args),
    /// Build a report (statistics, explanations, dashboard) for an SAE's latents.
    Report(cmd::report::Args),
    /// Print one latent's card from a report.
    Inspect(cmd::inspect::Args),
    /// Export a report's latents for other viewers (Neuronpedia / SAEDashboard feature batches).
    Export(cmd::export::Args),
    /// Which tokens and SAE features produce a prediction: relevance, attribution graph.
    Attribute(cmd::attribute::Args),
    /// Measure speed.
    Bench(cmd::bench::Args),
    /// Toy models of superposition: why neurons are polysemantic, and our SAE undoing it.
    Toy(cmd::toy::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Synth(a) => cmd::synth::run(a),
        Command::Train(a) => cmd::train::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Import(a) => cmd::import::run(a),
        Command::Export(a) => cmd::export::run(a),
        Command::Fetch(a) => cmd::fetch::run(a),
        Command::Hooks(a) => cmd::hooks::run(a),
        Command::Harvest(a) => cmd::harvest::run(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Attribute(a) => cmd::attribute::run(a),
        Command::Toy(a) => cmd::toy::run(a),
        Command::Run(a) => cmd::run::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
