// The simulation build passes `--cfg madsim --cfg tokio_unstable` (see docs/testing.md).
fn main() {
    println!("cargo::rustc-check-cfg=cfg(madsim)");
    println!("cargo::rustc-check-cfg=cfg(tokio_unstable)");
}
