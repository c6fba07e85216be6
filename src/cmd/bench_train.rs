//! `sae bench_train` (being built; the owner of this file replaces this placeholder).

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`bench_train` is not built yet")
}
