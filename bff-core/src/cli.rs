//! The command line every gateway binary shares: `serve` (default), `check` (validate the config and name the
//! bad key), `--config PATH`, `--help`.

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
    Help,
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut check = false;
    let mut config = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" | "help" => return Ok(Command::Help),
            "check" => check = true,
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
    Ok(if check {
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
    let (config_path, check) = match command {
        Command::Help => {
            print!("{}", usage(&spec));
            return ExitCode::SUCCESS;
        }
        Command::Check { config } => (config, true),
        Command::Serve { config } => (config, false),
    };
    let config = match BffConfig::load(&(spec.defaults)(), config_path.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: configuration error: {e}", spec.name);
            return ExitCode::from(2);
        }
    };
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
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if config.server.worker_threads > 0 {
        builder.worker_threads(config.server.worker_threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}: cannot start the runtime: {e}", spec.name);
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(spec, config))
}

async fn run(spec: GatewaySpec, config: BffConfig) -> ExitCode {
    crate::telemetry::init(&config.telemetry);
    let listen = config.server.listen;
    let grace = Duration::from_secs(config.server.shutdown_grace_s);
    let limits = config.server.limits.clone();
    let tls = match config.server.tls.as_ref().map(crate::tls::EdgeTls::new) {
        None => None,
        Some(Ok(tls)) => Some(tls),
        Some(Err(e)) => {
            eprintln!("{}: configuration error: {e}", spec.name);
            return ExitCode::from(2);
        }
    };
    let router = match (spec.app)(config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}: configuration error: {e}", spec.name);
            return ExitCode::from(2);
        }
    };
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
    match crate::server::serve_with_tls(
        listener,
        router,
        crate::server::shutdown_signal(),
        grace,
        &limits,
        tls,
    )
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: server error: {e}", spec.name);
            ExitCode::FAILURE
        }
    }
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
        assert!(parse(args(&["--bogus"])).is_err());
        assert!(parse(args(&["--config"])).is_err());
    }
}
