//! `wisp identity`: placeholder until the identity helper fills it in.
/// Arguments of `wisp identity`.
#[derive(clap::Args)]
pub struct Args {}
/// Runs `wisp identity`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("not yet built")
}
