//! The `bff-mobile` binary: serves the mobile gateway (see [`bff_mobile`]).

/// mimalloc: fewer cycles per allocation than the system allocator on the per-request paths.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    bff_core::cli::main(bff_core::cli::GatewaySpec {
        name: "bff-mobile",
        about: "the mobile Backend-for-Frontend (lean screens, ETags)",
        defaults: bff_mobile::defaults,
        app: bff_mobile::app,
    })
}
