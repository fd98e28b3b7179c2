fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A vendored protoc, so a fresh machine needs nothing beyond the Rust toolchain.
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    tonic_build::configure()
        .bytes(["."])
        .compile_protos(&["proto/corral.proto", "proto/raft.proto"], &["proto"])?;
    Ok(())
}
