//! `sae inspect`: print one unit's card (statistics, explanation, contexts) from a report.

use std::path::PathBuf;

use anyhow::Context;
use sae_report::{card, Report, UnitKind};

/// Which group of units to look in.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Group {
    /// The SAE's latents.
    Latents,
    /// The model's MLP neurons (when the report was built with --neurons).
    Neurons,
    /// The basis directions of the SAE's input space.
    Basis,
    /// The untrained control SAE's latents (reports built with --control untrained).
    Untrained,
    /// The random control directions (reports built with --control random).
    Random,
}

#[derive(clap::Args)]
pub struct Args {
    /// Report folder written by `sae report`.
    #[arg(long)]
    pub report: PathBuf,
    /// Unit index (a latent, or a neuron / basis direction with --group).
    #[arg(long, visible_alias = "unit")]
    pub latent: usize,
    /// Group the index refers to.
    #[arg(long, value_enum, default_value = "latents")]
    pub group: Group,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let report = Report::read(&args.report)
        .with_context(|| format!("reading the report in {}", args.report.display()))?;
    let kind = match args.group {
        Group::Latents => UnitKind::Latents,
        Group::Neurons => UnitKind::Neurons,
        Group::Basis => UnitKind::Basis,
        Group::Untrained => UnitKind::Untrained,
        Group::Random => UnitKind::Random,
    };
    print!("{}", card(&report, kind, args.latent)?);
    Ok(())
}
