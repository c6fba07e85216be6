//! `sae inspect` (being built; the owner of this file replaces this placeholder).

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`inspect` is not built yet")
}
