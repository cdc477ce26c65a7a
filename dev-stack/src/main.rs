//! `cargo run -p dev-stack`: the seven mock services (ports 7000–7006) and the three gateways (8081–8083) in
//! one process, with in-memory defaults, for development. Gateways read the same `BFF_*` environment variables
//! as their own binaries; Ctrl-C stops everything gracefully.

use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::time::Duration;

use bff_core::BffConfig;
use bff_core::cli::GatewaySpec;

const GATEWAYS: [GatewaySpec; 3] = [
    GatewaySpec {
        name: "bff-web",
        about: "web",
        defaults: bff_web::defaults,
        app: bff_web::app,
    },
    GatewaySpec {
        name: "bff-mobile",
        about: "mobile",
        defaults: bff_mobile::defaults,
        app: bff_mobile::app,
    },
    GatewaySpec {
        name: "bff-partner",
        about: "partner",
        defaults: bff_partner::defaults,
        app: bff_partner::app,
    },
];

#[tokio::main]
async fn main() -> ExitCode {
    bff_core::telemetry::init(&Default::default());
    let mocks = match mock_services::spawn_all(IpAddr::V4(Ipv4Addr::LOCALHOST), Some(7000)).await {
        Ok(m) => m,
        Err(e) => {
            eprintln!("dev-stack: cannot start the mock services on ports 7000-7006: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (stop, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut servers = Vec::new();
    let mut admins = Vec::new();
    let mut urls = Vec::new();
    for spec in GATEWAYS {
        let config = match BffConfig::load(&(spec.defaults)(), None) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("dev-stack: {}: configuration error: {e}", spec.name);
                return ExitCode::from(2);
            }
        };
        let listen = config.server.listen;
        let limits = config.server.limits.clone();
        let admin_listen = config.admin.listen;
        let (router, admin) = bff_core::admin::capture(|| (spec.app)(config));
        let router = match router {
            Ok(r) => r,
            Err(e) => {
                eprintln!("dev-stack: {}: configuration error: {e}", spec.name);
                return ExitCode::from(2);
            }
        };
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("dev-stack: {}: cannot listen on {listen}: {e}", spec.name);
                return ExitCode::FAILURE;
            }
        };
        urls.push((spec.name, format!("http://{listen}")));
        // The admin listener (metrics, probes, redacted config) of this gateway.
        if let Some(admin) = admin {
            let admin_listener = match tokio::net::TcpListener::bind(admin_listen).await {
                Ok(l) => l,
                Err(e) => {
                    eprintln!(
                        "dev-stack: {}: cannot listen on {admin_listen}: {e}",
                        spec.name
                    );
                    return ExitCode::FAILURE;
                }
            };
            admins.push((spec.name, format!("http://{admin_listen}")));
            let mut stopped = stop.subscribe();
            servers.push(tokio::spawn(bff_core::server::serve(
                admin_listener,
                admin.router(),
                async move {
                    let _ = stopped.recv().await;
                },
                Duration::from_secs(1),
            )));
        }
        let mut stopped = stop.subscribe();
        servers.push(tokio::spawn(async move {
            let stopped = async move {
                let _ = stopped.recv().await;
            };
            bff_core::server::serve_with_limits(
                listener,
                router,
                stopped,
                Duration::from_secs(5),
                &limits,
            )
            .await
        }));
    }
    println!("\nbff dev stack is up.\n\nmock services:");
    for handle in mocks.handles() {
        println!("  {:<16} {}", handle.service().name(), handle.url());
    }
    println!("gateways:");
    for (name, url) in &urls {
        println!("  {name:<16} {url}   (docs: {url}/docs)");
    }
    println!("admin (metrics, probes, config):");
    for (name, url) in &admins {
        println!("  {name:<16} {url}/metrics");
    }
    println!(
        "\ntry:\n  TOKEN=$(curl -s -X POST localhost:7000/token -H 'content-type: application/json' \\\n    \
         -d '{{\"sub\":\"7\",\"aud\":\"bff-web\",\"scopes\":[\"orders:read\"]}}' | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')\n  \
         curl -s localhost:8081/api/home -H \"authorization: Bearer $TOKEN\"\n\nCtrl-C stops everything.\n"
    );
    bff_core::server::shutdown_signal().await;
    let _ = stop.send(());
    for server in servers {
        let _ = server.await;
    }
    mocks.shutdown().await;
    ExitCode::SUCCESS
}
