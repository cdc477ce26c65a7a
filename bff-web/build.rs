//! Link-time code layout of the `bff-web` binary: the functions that start-up and the request path execute are
//! placed next to each other, so the pages the kernel maps in for them hold little else (idle RSS).
//!
//! `link/startup.order` (written by `bench/orderfile`) lists those functions' symbols; it is handed to the linker
//! (`--symbol-ordering-file`) when the linker is LLD — Rust's default for `x86_64-unknown-linux-gnu` since 1.90
//! — and left out otherwise (another target, or a linker chosen by configuration), so any build still links.
//! Symbols the binary no longer has are skipped: a stale list costs memory, never correctness. Names depend on
//! the build's features, so the list fits release builds of `bff-web` with `mock-services` (see bench/README.md).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let order = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("link/startup.order");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-env-changed=BFF_NO_ORDER_FILE");
    if lld_is_the_linker() && order.is_file() && env::var_os("BFF_NO_ORDER_FILE").is_none() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// Whether this build links with rustc's bundled LLD: the target is `x86_64-unknown-linux-gnu` and neither a
/// linker (cargo's `linker` setting, seen here as `RUSTC_LINKER`) nor linker flags (`-C linker=…`,
/// `-C link-arg=…`, `-C link-args=…`) are configured, and rustc is 1.90 or newer. Other flags (the PGO
/// profile's `-Cprofile-use=<path>`, whatever its path says) leave the linker as it is.
fn lld_is_the_linker() -> bool {
    let target = env::var("TARGET").unwrap_or_default();
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let linker_flag = flags
        .split('\x1f')
        .any(|flag| flag.trim_start_matches("-C").starts_with("link"));
    target == "x86_64-unknown-linux-gnu"
        && !linker_flag
        && env::var_os("RUSTC_LINKER").is_none()
        && rustc_minor_version().is_some_and(|minor| minor >= 90)
}

/// The minor version of the compiler cargo builds with (`rustc 1.95.0 (…)` → 95).
fn rustc_minor_version() -> Option<u32> {
    let rustc = env::var_os("RUSTC")?;
    let output = Command::new(rustc).arg("-V").output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    text.split_whitespace()
        .nth(1)?
        .split('.')
        .nth(1)?
        .parse()
        .ok()
}
