//! The Rust generated from `proto/*.proto` is checked in (`src/grpc/gen/`), so building needs no `protoc`.
//! This test runs the generator (`codegen/`, its own workspace: prost-build stays out of the main build) into
//! a temporary directory and fails when the checked-in files differ. It needs `protoc` (Debian:
//! `protobuf-compiler`; skipped without it outside CI). After changing a proto: `cargo run --manifest-path shared-schemas/codegen/Cargo.toml`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `.rs` files of `dir`, by name, with their text.
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
    // Outside CI, a machine without protoc skips the check (building never needs it); in CI it is required.
    if let Err(e) = Command::new("protoc").arg("--version").output() {
        if std::env::var_os("CI").is_none() {
            eprintln!("protoc not available ({e}); check skipped outside CI");
            return;
        }
        panic!("protoc is required in CI (Debian: protobuf-compiler): {e}");
    }
    let schemas = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tmp = std::env::temp_dir().join(format!("bff-proto-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    // The generator builds in its own target directory (beside the workspace's when one is set).
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || schemas.join("codegen/target"),
        |t| PathBuf::from(t).join("proto-codegen"),
    );
    let status = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--locked", "--manifest-path"])
        .arg(schemas.join("codegen/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .arg("--")
        .arg(&tmp)
        .status()
        .expect("run cargo");
    assert!(
        status.success(),
        "the generator failed (is protoc installed?)"
    );
    let checked_in = schemas.join("src/grpc/gen");
    for sub in ["", "server"] {
        assert_eq!(
            files(&checked_in.join(sub)),
            files(&tmp.join(sub)),
            "src/grpc/gen/{sub} is stale: run `cargo run --manifest-path shared-schemas/codegen/Cargo.toml`"
        );
    }
    assert!(
        std::fs::read(checked_in.join("descriptor.bin")).expect("descriptor.bin checked in")
            == std::fs::read(tmp.join("descriptor.bin")).expect("descriptor.bin generated"),
        "src/grpc/gen/descriptor.bin is stale: run `cargo run --manifest-path shared-schemas/codegen/Cargo.toml`"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}
