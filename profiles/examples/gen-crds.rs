//! Writes the ServiceProfile and TrafficSplit CRDs, generated from the types,
//! into `charts/wisp/crds/` (or the directory given as the first argument).

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/wisp/crds"));
    std::fs::create_dir_all(&dir)?;
    for (name, text) in wisp_profiles::crd::crd_files() {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
