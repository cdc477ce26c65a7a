//! The `bff-web` binary: the shared gateway command line over [`bff_web::app`].

fn main() -> std::process::ExitCode {
    bff_core::cli::main(bff_core::cli::GatewaySpec {
        name: "bff-web",
        about: "Backend-for-Frontend of the web app",
        defaults: bff_web::defaults,
        app: bff_web::app,
    })
}
