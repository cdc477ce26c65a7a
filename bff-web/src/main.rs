//! The `bff-web` binary: the shared gateway command line over [`bff_web::app`].

/// mimalloc: fewer cycles per allocation than the system allocator on the per-request paths.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    bff_core::cli::main(bff_core::cli::GatewaySpec {
        name: "bff-web",
        about: "Backend-for-Frontend of the web app",
        defaults: bff_web::defaults,
        app: bff_web::app,
    })
}
