//! The `bff-partner` binary: serves the partner gateway (see the [`bff_partner`] crate docs).

/// mimalloc: fewer cycles per allocation than the system allocator on the per-request paths.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    bff_core::cli::main(bff_core::cli::GatewaySpec {
        name: "bff-partner",
        about: "the partner Backend-for-Frontend gateway (versioned API, API-key authentication)",
        defaults: bff_partner::defaults,
        app: bff_partner::app,
    })
}
