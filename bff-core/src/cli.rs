//! The command line every gateway binary shares: `serve` (default), `check` (validate the config and name the
//! bad key), `healthcheck` (ask the running gateway's admin listener, for container healthchecks without
//! curl), `--config PATH`, `--help`.
//!
//! Serving runs two listeners: the public one and the admin one (`[admin] listen`: metrics, probes,
//! redacted config). On SIGTERM or Ctrl-C: readiness fails at once, after `server.drain_delay_ms` the
//! public listener closes (new connections are refused), in-flight requests finish within
//! `server.shutdown_grace_s`, the spans still queued for trace export are flushed (within
//! `telemetry.otlp.export_timeout_ms`), then the admin listener stops and the process exits. On SIGHUP or a change of
//! the config file the configuration is reloaded (see [`crate::reload`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;

use crate::config::{BffConfig, ConfigError};

/// What a gateway binary supplies: its name, its built-in defaults and how to build its router.
#[derive(Debug, Clone, Copy)]
pub struct GatewaySpec {
    /// Binary name, e.g. `bff-web`.
    pub name: &'static str,
    /// One line saying what the gateway serves.
    pub about: &'static str,
    /// Built-in defaults (lowest configuration layer).
    pub defaults: fn() -> BffConfig,
    /// Builds the complete router from a loaded configuration.
    pub app: fn(BffConfig) -> Result<Router, ConfigError>,
}

#[derive(Debug, PartialEq)]
enum Command {
    Serve { config: Option<PathBuf> },
    Check { config: Option<PathBuf> },
    Healthcheck { config: Option<PathBuf> },
    Help,
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut check = false;
    let mut healthcheck = false;
    let mut config = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" | "help" => return Ok(Command::Help),
            "check" => check = true,
            "healthcheck" => healthcheck = true,
            "serve" => {}
            "-c" | "--config" => {
                config = Some(PathBuf::from(args.next().ok_or("--config needs a path")?))
            }
            other => match other.strip_prefix("--config=") {
                Some(path) => config = Some(PathBuf::from(path)),
                None => return Err(format!("unknown argument `{other}`")),
            },
        }
    }
    Ok(if healthcheck {
        Command::Healthcheck { config }
    } else if check {
        Command::Check { config }
    } else {
        Command::Serve { config }
    })
}

fn usage(spec: &GatewaySpec) -> String {
    format!(
        "{name} — {about}\n\n\
         USAGE:\n    {name} [serve] [--config PATH]    run the gateway\n    \
         {name} check [--config PATH]      validate the configuration and exit\n    \
         {name} healthcheck [--config PATH]  exit 0 if the running gateway's admin /healthz answers 200\n    \
         {name} --help                     this text\n\n\
         Configuration layers: built-in defaults < --config TOML file < BFF_<SECTION>__<KEY> environment\n\
         variables (e.g. BFF_SERVER__LISTEN=0.0.0.0:8081, BFF_DOWNSTREAMS__USERS__URL=http://users:7001).\n\
         Unknown keys are errors. Reference: docs/configuration.md\n",
        name = spec.name,
        about = spec.about
    )
}

/// Runs the binary: parses arguments, loads the config, then checks or serves. Exit codes: 0 ok, 2 usage or
/// configuration error, 1 runtime failure.
pub fn main(spec: GatewaySpec) -> ExitCode {
    let command = match parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}\n\n{}", usage(&spec));
            return ExitCode::from(2);
        }
    };
    let (config_path, check, healthcheck) = match command {
        Command::Help => {
            print!("{}", usage(&spec));
            return ExitCode::SUCCESS;
        }
        Command::Check { config } => (config, true, false),
        Command::Healthcheck { config } => (config, false, true),
        Command::Serve { config } => (config, false, false),
    };
    let config = match BffConfig::load(&(spec.defaults)(), config_path.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: configuration error: {e}", spec.name);
            return ExitCode::from(2);
        }
    };
    if healthcheck {
        return match probe_healthz(config.admin.listen) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{}: unhealthy: {e}", spec.name);
                ExitCode::FAILURE
            }
        };
    }
    if check {
        // The edge certificate and key are read as the server would read them.
        if let Some(tls) = &config.server.tls
            && let Err(e) = crate::tls::EdgeTls::new(tls)
        {
            eprintln!("{}: configuration error: {e}", spec.name);
            return ExitCode::from(2);
        }
        return match (spec.app)(config) {
            Ok(_) => {
                println!("{}: configuration OK", spec.name);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: configuration error: {e}", spec.name);
                ExitCode::from(2)
            }
        };
    }
    let mut builder = runtime_builder(config.server.worker_threads);
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}: cannot start the runtime: {e}", spec.name);
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(spec, config_path, config))
}

/// The runtime for `worker_threads`: one thread is tokio's current-thread scheduler (the server runs on the
/// main thread: no work-stealing queues and no cross-thread wake-ups to pay for), more (or `0`, one per core)
/// the multi-thread scheduler.
fn runtime_builder(worker_threads: usize) -> tokio::runtime::Builder {
    if worker_threads == 1 {
        return tokio::runtime::Builder::new_current_thread();
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if worker_threads > 0 {
        builder.worker_threads(worker_threads);
    }
    builder
}

/// How often the config file is checked for changes.
const RELOAD_POLL: Duration = Duration::from_secs(2);

async fn run(spec: GatewaySpec, config_path: Option<PathBuf>, config: BffConfig) -> ExitCode {
    crate::telemetry::init(&config.telemetry);
    let listen = config.server.listen;
    let grace = Duration::from_secs(config.server.shutdown_grace_s);
    let drain_delay = Duration::from_millis(config.server.drain_delay_ms);
    let limits = config.server.limits.clone();
    let admin_config = config.admin.clone();
    let flush_bound = Duration::from_millis(config.telemetry.otlp.export_timeout_ms);
    // The listener's TLS is set up once (a reload swaps the router, not the listener); its certificate and
    // key are reloaded on their own (file change, SIGHUP).
    let tls = match config.server.tls.as_ref().map(crate::tls::EdgeTls::new) {
        None => None,
        Some(Ok(tls)) => Some(tls),
        Some(Err(e)) => {
            eprintln!("{}: configuration error: {e}", spec.name);
            return ExitCode::from(2);
        }
    };
    let reloader = match crate::reload::Reloader::start(
        crate::reload::Build {
            defaults: spec.defaults,
            app: spec.app,
        },
        config_path.as_deref(),
        config,
    ) {
        Ok(r) => std::sync::Arc::new(r),
        Err(e) => {
            eprintln!("{}: configuration error: {e}", spec.name);
            return ExitCode::from(2);
        }
    };
    reloader.watch(RELOAD_POLL);
    let router = reloader.public_router();
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{}: cannot listen on {listen}: {e}", spec.name);
            return ExitCode::FAILURE;
        }
    };
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(gateway = spec.name, listen = %local, tls = tls.is_some(), "listening");
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_task = match admin_config.enabled {
        true => match tokio::net::TcpListener::bind(admin_config.listen).await {
            Ok(l) => {
                let bound = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
                tracing::info!(listen = %bound, "admin listening");
                Some(tokio::spawn(crate::server::serve(
                    l,
                    reloader.admin_router(),
                    async move {
                        let _ = admin_stopped.await;
                    },
                    Duration::from_secs(1),
                )))
            }
            Err(e) => {
                eprintln!(
                    "{}: cannot listen on {} (admin.listen): {e}",
                    spec.name, admin_config.listen
                );
                return ExitCode::FAILURE;
            }
        },
        false => None,
    };
    // What start-up allocated and freed (configuration, documents, routers) goes back to the OS now, not on
    // later allocator activity that an idle gateway does not have (`conn::release`; the collection runs on
    // a worker thread, which with one worker is the thread that started the gateway).
    crate::conn::release::collect_soon();
    let flusher = reloader.clone();
    let shutdown = async move {
        crate::server::shutdown_signal().await;
        // The flag is shared by every build of the gateway, so a reload cannot undo it.
        reloader.admin().readiness().start_draining();
        // Event streams end now with a final event telling clients when to reconnect.
        crate::streams::drain_all();
        // Readiness fails first; the listener closes only after load balancers had time to notice.
        tokio::time::sleep(drain_delay).await;
    };
    let served =
        crate::server::serve_with_tls(listener, router, shutdown, grace, &limits, tls).await;
    // The spans of the last requests are exported (within one export timeout) before the process ends.
    flusher.admin().flush_traces(flush_bound).await;
    let _ = stop_admin.send(());
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    tracing::info!("stopped");
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: server error: {e}", spec.name);
            ExitCode::FAILURE
        }
    }
}

/// `GET /healthz` on the admin listener at `admin` (loopback when it listens on all interfaces), over a
/// plain TCP connection with a 2 s timeout: `Ok` on a 200.
fn probe_healthz(admin: std::net::SocketAddr) -> Result<(), String> {
    use std::io::{Read, Write};
    let mut target = admin;
    if target.ip().is_unspecified() {
        target.set_ip(std::net::IpAddr::from([127, 0, 0, 1]));
    }
    let timeout = Duration::from_secs(2);
    let mut stream = std::net::TcpStream::connect_timeout(&target, timeout)
        .map_err(|e| format!("cannot connect to {target}: {e}"))?;
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).map_err(|e| e.to_string())?;
    if head.starts_with(b"HTTP/1.") && &head[9..12] == b"200" {
        Ok(())
    } else {
        Err(format!("answered `{}`", String::from_utf8_lossy(&head)))
    }
}

/// The `main` of a gateway binary: [`crate::alloc::Allocator`] (mimalloc) as the global allocator (fewer
/// cycles per allocation than the system allocator on the per-request paths) and [`main`] over the crate's
/// `defaults` and `app`.
///
/// ```text
/// bff_core::gateway_main!("bff-web", "Backend-for-Frontend of the web app", bff_web);
/// ```
#[macro_export]
macro_rules! gateway_main {
    ($name:literal, $about:literal, $gateway:ident) => {
        /// mimalloc (built with `no_thp`: no transparent huge pages, see docs/operations.md), asked through
        /// its plain API where it can be (`bff_core::alloc`).
        #[global_allocator]
        static ALLOCATOR: $crate::alloc::Allocator = $crate::alloc::Allocator;

        fn main() -> std::process::ExitCode {
            // Parked connections' freed state goes back to the OS (`bff_core::conn::release`).
            $crate::conn::release::set_collector($crate::alloc::Allocator::collect);
            $crate::cli::main($crate::cli::GatewaySpec {
                name: $name,
                about: $about,
                defaults: $gateway::defaults,
                app: $gateway::app,
            })
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    /// The command line is parsed into serve/check/help, and unknown arguments are refused.
    #[test]
    fn parses_commands() {
        assert_eq!(parse(args(&[])), Ok(Command::Serve { config: None }));
        assert_eq!(
            parse(args(&["check", "--config", "a.toml"])),
            Ok(Command::Check {
                config: Some("a.toml".into())
            })
        );
        assert_eq!(parse(args(&["--help"])), Ok(Command::Help));
        assert_eq!(
            parse(args(&["healthcheck"])),
            Ok(Command::Healthcheck { config: None })
        );
        assert!(parse(args(&["--bogus"])).is_err());
        assert!(parse(args(&["--config"])).is_err());
    }
}
