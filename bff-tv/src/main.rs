//! The `bff-tv` binary: the shared gateway command line over [`bff_tv::app`].

/// mimalloc: fewer cycles per allocation than the system allocator on the per-request paths.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    bff_core::cli::main(bff_core::cli::GatewaySpec {
        name: "bff-tv",
        about: "Backend-for-Frontend of the tv app",
        defaults: bff_tv::defaults,
        app: bff_tv::app,
    })
}
