//! `mock-services`: runs the mock downstream services (all seven by default) until Ctrl-C / SIGTERM.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use std::path::PathBuf;

use mock_services::{FaultRule, IdpConfig, MockTls, Service, ServiceConfig, spawn_many};

const USAGE: &str = "\
Usage: mock-services [OPTIONS]

Runs the deterministic mock downstream services (default: all seven on 127.0.0.1:7000..7006).

Options:
  --host IP                bind address (default 127.0.0.1)
  --only S1,S2,...         run only these services
  --port-base N            service i (identity=0 .. recommendations=6) listens on N+i (default 7000)
  --port SERVICE=PORT      port of one service (repeatable; 0 = ephemeral)
  --fault SERVICE=JSON     start with a fault rule (JSON object or array; repeatable)
  --issuer S               issuer of minted tokens (default bff-dev-idp)
  --key-grace-s N          seconds a rotated-out key stays in the JWKS (default 300)
  --jwks-uri URL           jwks_uri announced by /.well-known/openid-configuration (default: this host's JWKS)
  --tls-cert FILE          serve every service over HTTPS with this PEM certificate chain (needs --tls-key)
  --tls-key FILE           the PEM private key of --tls-cert
  --client-ca FILE         with TLS: require client certificates issued by these PEM CA certificates
  -h, --help               show this help

Services: identity, users, catalog, orders, reviews, inventory, recommendations
Example: mock-services --only users,orders --fault 'users={\"kind\":\"latency\",\"ms\":200}'";

struct Args {
    host: IpAddr,
    only: Option<Vec<Service>>,
    port_base: u16,
    ports: Vec<(Service, u16)>,
    faults: Vec<(Service, FaultRule)>,
    idp: IdpConfig,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
}

fn split_pair(flag: &str, value: &str) -> Result<(Service, String), String> {
    let (name, rest) = value
        .split_once('=')
        .ok_or_else(|| format!("{flag} expects SERVICE=VALUE, got {value:?}"))?;
    let service: Service = name.parse().map_err(|e| format!("{flag}: {e}"))?;
    Ok((service, rest.to_owned()))
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut args = Args {
        host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        only: None,
        port_base: 7000,
        ports: Vec::new(),
        faults: Vec::new(),
        idp: IdpConfig::default(),
        tls_cert: None,
        tls_key: None,
        client_ca: None,
    };
    while let Some(flag) = it.next() {
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (flag, None),
        };
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--host" => args.host = value()?.parse().map_err(|e| format!("--host: {e}"))?,
            "--only" => {
                let list = value()?
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(str::parse)
                    .collect::<Result<Vec<Service>, _>>()
                    .map_err(|e| format!("--only: {e}"))?;
                args.only = Some(list);
            }
            "--port-base" => {
                let base: u16 = value()?.parse().map_err(|e| format!("--port-base: {e}"))?;
                if base > u16::MAX - 6 {
                    return Err("--port-base too large".to_owned());
                }
                args.port_base = base;
            }
            "--port" => {
                let (service, port) = split_pair("--port", &value()?)?;
                args.ports.push((
                    service,
                    port.parse().map_err(|e| format!("--port {service}: {e}"))?,
                ));
            }
            "--fault" => {
                let (service, json) = split_pair("--fault", &value()?)?;
                let rules: Vec<FaultRule> = if json.trim_start().starts_with('[') {
                    serde_json::from_str(&json)
                } else {
                    serde_json::from_str(&json).map(|r| vec![r])
                }
                .map_err(|e| format!("--fault {service}: {e}"))?;
                for rule in rules {
                    rule.validate()
                        .map_err(|e| format!("--fault {service}: {e}"))?;
                    args.faults.push((service, rule));
                }
            }
            "--issuer" => args.idp.issuer = value()?,
            "--key-grace-s" => {
                args.idp.grace = Duration::from_secs(
                    value()?
                        .parse()
                        .map_err(|e| format!("--key-grace-s: {e}"))?,
                );
            }
            "--jwks-uri" => args.idp.jwks_uri = Some(value()?),
            "--tls-cert" => args.tls_cert = Some(PathBuf::from(value()?)),
            "--tls-key" => args.tls_key = Some(PathBuf::from(value()?)),
            "--client-ca" => args.client_ca = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.tls_cert.is_some() != args.tls_key.is_some() {
        return Err("--tls-cert and --tls-key go together".to_owned());
    }
    if args.client_ca.is_some() && args.tls_cert.is_none() {
        return Err("--client-ca needs --tls-cert and --tls-key".to_owned());
    }
    Ok(Some(args))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            match MockTls::from_files(cert, key, args.client_ca.as_deref()) {
                Ok(tls) => Some(tls),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        _ => None,
    };
    let services = args.only.clone().unwrap_or_else(|| Service::ALL.to_vec());
    let specs = services.iter().map(|&service| {
        let port = args
            .ports
            .iter()
            .rev()
            .find(|(s, _)| *s == service)
            .map_or(args.port_base + service.index(), |(_, p)| *p);
        let config = ServiceConfig {
            faults: args
                .faults
                .iter()
                .filter(|(s, _)| *s == service)
                .map(|(_, r)| r.clone())
                .collect(),
            idp: args.idp.clone(),
            tls: tls.clone(),
        };
        (service, SocketAddr::new(args.host, port), config)
    });
    let stack = match spawn_many(specs.collect::<Vec<_>>()).await {
        Ok(stack) => stack,
        Err(e) => {
            eprintln!("error: failed to start: {e}");
            return ExitCode::FAILURE;
        }
    };
    for handle in stack.handles() {
        println!("{:<16} {}", handle.service().name(), handle.url());
        if let Some(grpc) = handle.grpc_url() {
            println!("{:<16} {grpc} (gRPC)", "");
        }
        for rule in handle.faults() {
            let json = serde_json::to_string(&rule).unwrap_or_default();
            tracing::info!(service = handle.service().name(), fault = %json, "fault rule active");
        }
    }
    tracing::info!("mock services running; Ctrl-C to stop");
    shutdown_signal().await;
    tracing::info!("shutting down");
    stack.shutdown().await;
    ExitCode::SUCCESS
}
