//! `sae hooks` (being built; the owner of this file replaces this placeholder).

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`hooks` is not built yet")
}
