//! Relinks the proxy when its linker symbol ordering file changes: the
//! shipping build (`cargo proxy-release`) passes proxy/symbol-order.txt to
//! rust-lld, a file cargo does not otherwise track. Other builds ignore it.

fn main() {
    println!("cargo:rerun-if-changed=symbol-order.txt");
}
