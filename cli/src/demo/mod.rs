//! `wisp demo`: placeholder until the demo helper fills it in.
/// Arguments of `wisp demo`.
#[derive(clap::Args)]
pub struct Args {}
/// Runs the demo.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("not yet built")
}
