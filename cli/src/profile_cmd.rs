//! `wisp profile`, `wisp validate`, `wisp apply`, `wisp delete`: placeholder
//! until the profiles helper fills it in.
/// Arguments of `wisp profile`.
#[derive(clap::Args)]
pub struct Args {}
/// Runs `wisp profile`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("not yet built")
}
