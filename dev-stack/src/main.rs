//! `cargo run -p dev-stack`: the seven mock services (ports 7000–7006) and the gateways (8081–8083, bff-tv 8085) in
//! one process, with in-memory defaults, for development. Gateways read the same `BFF_*` environment variables
//! as their own binaries; Ctrl-C stops everything gracefully.
//!
//! `cargo run -p dev-stack -- new-gateway bff-<name>`: creates a new gateway crate and registers it with the
//! workspace, this dev stack, the Dockerfile, docker-compose.yml, Prometheus and the compose test
//! (`scaffold`; see docs/new-gateway.md).
//!
//! `cargo run -p dev-stack -- --tls`: the same over TLS everywhere. A development CA, a server certificate for
//! `localhost` / `127.0.0.1` and a partner client certificate are generated at start into a fresh directory
//! (nothing is committed); the mocks serve HTTPS, the gateways terminate TLS and call the mocks over HTTPS
//! trusting the CA, and bff-partner also accepts the client certificate `CN=acme-client` as partner acme.

mod scaffold;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use bff_core::BffConfig;
use bff_core::cli::GatewaySpec;
use bff_core::config::ClientCertConfig;
use bff_core::tls::{ClientAuth, ServerTlsConfig};
use mock_services::certs::{CertSpec, TestCa};
use mock_services::{MockTls, Service, ServiceConfig};

/// The development certificates of `--tls`.
struct DevCerts {
    dir: PathBuf,
    ca_file: PathBuf,
    server: (PathBuf, PathBuf),
    mock: MockTls,
}

/// Generates a CA, a server certificate and the partner client certificate `acme-client` into `dir`.
fn dev_certs(dir: &Path) -> Result<DevCerts, String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot generate dev certificates: {e}");
    std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    let ca = TestCa::new("bff dev CA").map_err(|e| fail(&e))?;
    let ca_file = dir.join("ca.crt");
    std::fs::write(&ca_file, ca.cert_pem()).map_err(|e| fail(&e))?;
    let server = ca.issue(&CertSpec::server()).map_err(|e| fail(&e))?;
    let server_files = server.write(dir, "server").map_err(|e| fail(&e))?;
    ca.issue(&CertSpec::client("acme-client", &[]))
        .map_err(|e| fail(&e))?
        .write(dir, "partner-acme")
        .map_err(|e| fail(&e))?;
    Ok(DevCerts {
        dir: dir.to_owned(),
        ca_file,
        server: server_files,
        mock: server.mock_tls(None),
    })
}

/// `defaults` over TLS: the listener terminates TLS, every downstream is `https://` trusting the dev CA.
fn with_tls(mut config: BffConfig, certs: &DevCerts) -> BffConfig {
    let mut tls = ServerTlsConfig::new(&certs.server.0, &certs.server.1);
    tls.client_ca_file = Some(certs.ca_file.clone());
    tls.client_auth = ClientAuth::Optional;
    config.server.tls = Some(tls);
    for d in config.downstreams.values_mut() {
        if let Some(rest) = d.url.strip_prefix("http://") {
            d.url = format!("https://{rest}");
        }
        d.tls.ca_file = Some(certs.ca_file.clone());
    }
    if config.auth.mode == bff_core::config::AuthMode::ApiKey {
        config.auth.client_certs.push(ClientCertConfig {
            subject: Some("acme-client".into()),
            san: None,
            partner_id: "acme".into(),
            tier: "gold".into(),
            scopes: vec![
                "catalog:read".into(),
                "inventory:read".into(),
                "orders:read".into(),
            ],
        });
    }
    config
}

const GATEWAYS: &[GatewaySpec] = &[
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
    GatewaySpec {
        name: "bff-tv",
        about: "tv",
        defaults: bff_tv::defaults,
        app: bff_tv::app,
    },
    // new-gateway: gateways above this line
];

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("new-gateway") {
        return match scaffold::main(&args[1..]) {
            Ok(done) => {
                println!("{done}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("dev-stack new-gateway: {e}");
                ExitCode::from(2)
            }
        };
    }
    let tls = match args.first().map(String::as_str) {
        None => false,
        Some("--tls") => true,
        Some(_) => {
            eprintln!(
                "usage: dev-stack [--tls] | dev-stack new-gateway bff-<name> [--port <port>]"
            );
            return ExitCode::from(2);
        }
    };
    bff_core::telemetry::init(&Default::default());
    let certs = if tls {
        let dir = std::env::temp_dir().join(format!("bff-dev-certs-{}", std::process::id()));
        match dev_certs(&dir) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("dev-stack: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let mock_config = ServiceConfig {
        tls: certs.as_ref().map(|c| c.mock.clone()),
        ..Default::default()
    };
    let mock_specs = Service::ALL.map(|s| {
        let addr = (IpAddr::V4(Ipv4Addr::LOCALHOST), 7000 + s.index()).into();
        (s, addr, mock_config.clone())
    });
    let mocks = match mock_services::spawn_many(mock_specs).await {
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
        let mut defaults = match &certs {
            Some(certs) => with_tls((spec.defaults)(), certs),
            None => (spec.defaults)(),
        };
        // bff-web is the browser's OAuth client: sessions on, the demo web app on its origin.
        let web_url = format!(
            "{}://localhost:{}",
            if certs.is_some() { "https" } else { "http" },
            defaults.server.listen.port()
        );
        if spec.name == "bff-web" {
            defaults = dev_stack::demo::with_sessions(defaults, &web_url);
            if let Some(idp) = mocks.handles().find_map(|h| h.idp()) {
                let listen = defaults.server.listen;
                let scheme = if certs.is_some() { "https" } else { "http" };
                dev_stack::demo::register_client(idp, &web_url, &format!("{scheme}://{listen}"));
            }
        }
        let config = match BffConfig::load(&defaults, None) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("dev-stack: {}: configuration error: {e}", spec.name);
                return ExitCode::from(2);
            }
        };
        let listen = config.server.listen;
        let limits = config.server.limits.clone();
        let edge = match config.server.tls.as_ref().map(bff_core::tls::EdgeTls::new) {
            None => None,
            Some(Ok(edge)) => Some(edge),
            Some(Err(e)) => {
                eprintln!("dev-stack: {}: configuration error: {e}", spec.name);
                return ExitCode::from(2);
            }
        };
        let admin_listen = config.admin.listen;
        let (router, admin) = bff_core::admin::capture(|| (spec.app)(config));
        let router = match router {
            Ok(r) if spec.name == "bff-web" => r.merge(dev_stack::demo::router()),
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
        let scheme = if edge.is_some() { "https" } else { "http" };
        urls.push((spec.name, format!("{scheme}://{listen}")));
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
            bff_core::server::serve_with_tls(
                listener,
                router,
                stopped,
                Duration::from_secs(5),
                &limits,
                edge,
            )
            .await
        }));
    }
    println!("\nbff dev stack is up.\n\nmock services:");
    for handle in mocks.handles() {
        println!("  {:<16} {}", handle.service().name(), handle.url());
        if let Some(grpc) = handle.grpc_url() {
            println!("  {:<16} {grpc} (gRPC)", "");
        }
    }
    println!("gateways:");
    for (name, url) in &urls {
        println!("  {name:<16} {url}   (docs: {url}/docs)");
    }
    println!(
        "demo web app (log in, home screen, cart, log out):\n  {}://localhost:8081/",
        if certs.is_some() { "https" } else { "http" }
    );
    println!("admin (metrics, probes, config):");
    for (name, url) in &admins {
        println!("  {name:<16} {url}/metrics");
    }
    if let Some(certs) = &certs {
        let ca = certs.ca_file.display();
        let dir = certs.dir.display();
        println!(
            "\nTLS: certificates generated in {dir} (CA: {ca})\ntry:\n  \
             TOKEN=$(curl -s --cacert {ca} -X POST https://localhost:7000/token -H 'content-type: application/json' \\\n    \
             -d '{{\"sub\":\"7\",\"aud\":\"bff-web\",\"scopes\":[\"orders:read\"]}}' | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')\n  \
             curl -s --cacert {ca} https://localhost:8081/api/home -H \"authorization: Bearer $TOKEN\"\n  \
             curl -s --cacert {ca} --cert {dir}/partner-acme.crt --key {dir}/partner-acme.key https://localhost:8083/v1/products/12\n\n\
             Ctrl-C stops everything.\n"
        );
    } else {
        println!(
            "\ntry:\n  TOKEN=$(curl -s -X POST localhost:7000/token -H 'content-type: application/json' \\\n    \
         -d '{{\"sub\":\"7\",\"aud\":\"bff-web\",\"scopes\":[\"orders:read\"]}}' | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')\n  \
         curl -s localhost:8081/api/home -H \"authorization: Bearer $TOKEN\"\n\nCtrl-C stops everything.\n"
        );
    }
    bff_core::server::shutdown_signal().await;
    let _ = stop.send(());
    for server in servers {
        let _ = server.await;
    }
    mocks.shutdown().await;
    if let Some(certs) = certs {
        let _ = std::fs::remove_dir_all(certs.dir);
    }
    ExitCode::SUCCESS
}
