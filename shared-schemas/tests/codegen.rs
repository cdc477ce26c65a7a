//! The Rust generated from `proto/*.proto` is checked in (`src/grpc/gen/`), so building needs no `protoc`.
//! This test regenerates it into a temporary directory with `tonic-prost-build` (it needs `protoc`, e.g.
//! Debian's `protobuf-compiler`) and fails when the checked-in files differ. To update them after changing a
//! proto: `BFF_REGENERATE_PROTO=1 cargo test -p shared-schemas --test codegen`.

use std::path::{Path, PathBuf};

/// The protos, one package each.
const PROTOS: [&str; 3] = ["inventory.proto", "recommendations.proto", "orders.proto"];

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Generates the messages into `messages` and the server stubs (messages referenced from `crate::grpc`)
/// into `servers`.
fn generate(messages: &Path, servers: &Path) {
    let protos: Vec<PathBuf> = PROTOS
        .iter()
        .map(|p| crate_dir().join("proto").join(p))
        .collect();
    let includes = [crate_dir().join("proto")];
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(false)
        .out_dir(messages)
        .compile_protos(&protos, &includes)
        .expect("generate the messages (is protoc installed?)");
    let mut servers_config = tonic_prost_build::configure()
        .build_server(true)
        .build_client(false)
        .out_dir(servers);
    for package in ["inventory", "recommendations", "orders"] {
        servers_config = servers_config.extern_path(
            format!(".shop.{package}"),
            format!("crate::grpc::{package}"),
        );
    }
    servers_config
        .compile_protos(&protos, &includes)
        .expect("generate the server stubs (is protoc installed?)");
}

/// The `.rs` files of `dir`, by name.
fn files(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("read"))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn generated_code_is_current() {
    let checked_in = crate_dir().join("src/grpc/gen");
    let (messages, servers) = if std::env::var_os("BFF_REGENERATE_PROTO").is_some() {
        let _ = std::fs::remove_dir_all(&checked_in);
        (checked_in.clone(), checked_in.join("server"))
    } else {
        let tmp = std::env::temp_dir().join(format!("bff-proto-{}", std::process::id()));
        (tmp.join("gen"), tmp.join("gen/server"))
    };
    std::fs::create_dir_all(&servers).expect("create output dirs");
    generate(&messages, &servers);
    for (dir, fresh) in [
        (checked_in.clone(), &messages),
        (checked_in.join("server"), &servers),
    ] {
        assert_eq!(
            files(&dir),
            files(fresh),
            "{} is stale: run `BFF_REGENERATE_PROTO=1 cargo test -p shared-schemas --test codegen`",
            dir.display()
        );
    }
    if !messages.starts_with(&checked_in) {
        let _ = std::fs::remove_dir_all(messages.parent().expect("tmp"));
    }
}
