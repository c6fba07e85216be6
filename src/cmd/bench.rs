//! `sae bench`: speed measurements, one subcommand per pipeline stage.

use clap::Subcommand;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Rows/s of the SAE training step next to a plain matmul of the encoder's shape.
    Train(super::bench_train::Args),
    /// Tokens/s of the harvest forward pass.
    Harvest(super::bench_harvest::Args),
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.what {
        What::Train(a) => super::bench_train::run(a),
        What::Harvest(a) => super::bench_harvest::run(a),
    }
}
