//! Compiles `sluice/v1/*.proto` into Rust (prost messages, tonic clients and servers) and
//! writes the encoded file descriptor set for gRPC server reflection.
//!
//! The .proto files are parsed by `protox`, a protobuf compiler written in Rust, instead of
//! `protoc`: the build needs no system package or downloaded binary, and every machine gets the
//! same compiler (and so the same descriptors) from Cargo.lock.

use prost::Message;
use std::error::Error;
use std::path::PathBuf;

/// Every file of the API, relative to this crate's root (which is the import root: files
/// import each other as "sluice/v1/common.proto").
const PROTO_FILES: &[&str] = &[
    "sluice/v1/common.proto",
    "sluice/v1/services.proto",
    "sluice/v1/pools.proto",
    "sluice/v1/network.proto",
    "sluice/v1/observability.proto",
    "sluice/v1/l7.proto",
];

/// Name of the encoded `FileDescriptorSet` in `OUT_DIR`, included by `src/lib.rs`.
const DESCRIPTOR_FILE: &str = "sluice_v1_descriptor.bin";

fn main() -> Result<(), Box<dyn Error>> {
    let crate_root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={}", crate_root.join(file).display());
    }

    // protox includes the imported files (google/protobuf/*.proto, which it ships) in the set,
    // so reflection clients can resolve every type from this one descriptor set.
    let descriptors = protox::compile(PROTO_FILES, [&crate_root])?;
    std::fs::write(out_dir.join(DESCRIPTOR_FILE), descriptors.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .emit_rerun_if_changed(false)
        .compile_fds(descriptors)?;
    Ok(())
}
