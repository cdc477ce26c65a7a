//! Generates the Rust of `shared-schemas/proto/*.proto` (needs `protoc`): the messages into `<out>/`, the
//! tonic server stubs (messages referenced from `crate::grpc::<package>`) into `<out>/server/`. `<out>` is
//! the first argument, by default `shared-schemas/src/grpc/gen` (replaced). The descriptor set of the protos
//! (`<out>/descriptor.bin`, imports included) is written beside them: `[downstreams.<name>] descriptor_set`
//! names it for declarative REST→gRPC routes.

use std::path::PathBuf;

/// The protos, one package each (`shop.<package>`).
const PACKAGES: [&str; 3] = ["inventory", "recommendations", "orders"];

fn main() {
    // `cargo run` names this checkout at run time; the path compiled in may be another checkout's when a
    // target directory is shared (cargo reuses the binary across checkouts of the same tree).
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let schemas = manifest_dir.join("..");
    let out = std::env::args_os().nth(1).map_or_else(
        || {
            let out = schemas.join("src/grpc/gen");
            let _ = std::fs::remove_dir_all(&out);
            out
        },
        PathBuf::from,
    );
    let protos: Vec<PathBuf> = PACKAGES
        .iter()
        .map(|p| schemas.join("proto").join(format!("{p}.proto")))
        .collect();
    let includes = [schemas.join("proto")];
    std::fs::create_dir_all(out.join("server")).expect("create the output directories");
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(false)
        .out_dir(&out)
        .file_descriptor_set_path(out.join("descriptor.bin"))
        .compile_protos(&protos, &includes)
        .expect("generate the messages (is protoc installed?)");
    let mut servers = tonic_prost_build::configure()
        .build_server(true)
        .build_client(false)
        .out_dir(out.join("server"));
    for package in PACKAGES {
        servers = servers.extern_path(
            format!(".shop.{package}"),
            format!("crate::grpc::{package}"),
        );
    }
    servers
        .compile_protos(&protos, &includes)
        .expect("generate the server stubs (is protoc installed?)");
}
