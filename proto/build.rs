//! Compiles the .proto files with tonic/prost, using a vendored protoc so a fresh machine needs no
//! system package.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/weft/v1/common.proto",
        "proto/weft/v1/registry.proto",
        "proto/weft/v1/job.proto",
        "proto/weft/v1/worker.proto",
    ];
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Shuffle frames are the bulk of what workers send each other: as `bytes::Bytes` a received
    // frame is a view of the receive buffer, not a copy of it (the wire format is the same).
    config.bytes([".weft.v1.ShuffleFrame.arrow_ipc"]);
    tonic_prost_build::configure().compile_with_config(config, &protos, &["proto"])?;
    Ok(())
}
