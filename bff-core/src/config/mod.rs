//! Typed configuration: built-in defaults < TOML file < `BFF_SECTION__KEY` environment variables, loaded with
//! figment, unknown keys rejected, then validated into a usable value or an error that names the bad key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[cfg(test)]
mod cycles;
pub(crate) mod error;

pub use crate::aggregate::config::{AggregateConfig, AggregatePartConfig, MergeMode};
pub use crate::auth::config::{ApiKeyConfig, AuthConfig, AuthMode, ClientCertConfig, JwtConfig};
pub use crate::downstream::config::{DownstreamConfig, Protocol};
pub use crate::routes::config::RouteConfig;
pub use error::ConfigError;

/// The whole configuration of one gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct BffConfig {
    /// The listening socket and the limits of the edge.
    pub server: ServerConfig,
    /// Downstream services by name (`users`, `catalog`, ...), each with its base URL and call policy.
    pub downstreams: BTreeMap<String, DownstreamConfig>,
    /// How clients authenticate.
    pub auth: AuthConfig,
    /// Declarative routes that forward a public path to a downstream path.
    pub routes: Vec<RouteConfig>,
    /// Declarative aggregations: one public path fanning out to several downstream paths in parallel.
    pub aggregates: Vec<AggregateConfig>,
    /// Logging.
    pub telemetry: TelemetryConfig,
    /// CORS for browser clients (off unless origins are listed).
    pub cors: crate::cors::CorsConfig,
    /// Rate limiting: policies, the in-memory or Redis store, client addresses, failed-authentication budget.
    pub rate_limit: crate::ratelimit::config::RateLimitConfig,
    /// Response caching shared by all downstreams (local size, Redis second level) and compression.
    pub cache: crate::cache::config::CacheConfig,
    /// The admin listener: metrics, probes, redacted effective configuration (`[admin]`).
    pub admin: crate::admin::AdminConfig,
    /// Limits of JSON request bodies of commands (size after decompression, nesting, gzip routes).
    pub body: crate::body::BodyConfig,
    /// `Idempotency-Key` records of commands: store (memory or Redis), time to live, lock time.
    pub idempotency: crate::idempotency::config::IdempotencyConfig,
    /// `[streams]`: event streams (Server-Sent Events): heartbeats, idle timeout, per-user limit.
    pub streams: crate::streams::StreamsConfig,
    /// `[live]`: WebSocket connections: tickets, allowed origins, message size, keepalive, per-user limit,
    /// send queue.
    pub live: crate::live::LiveConfig,
}

/// The listening socket and the limits of the edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on, e.g. `127.0.0.1:8081`.
    pub listen: SocketAddr,
    /// The time budget of one client request, in milliseconds: every downstream call gets what remains of it,
    /// and the client gets a 504 when it is spent.
    pub request_timeout_ms: u64,
    /// Largest accepted request body, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// How long graceful shutdown waits for in-flight requests, in seconds.
    pub shutdown_grace_s: u64,
    /// On shutdown, how long readiness fails before the listener closes, in milliseconds (time for load
    /// balancers to stop sending new requests; in-flight requests are served meanwhile).
    pub drain_delay_ms: u64,
    /// Longest accepted request target (path + query), in bytes; 414 beyond.
    pub max_uri_bytes: usize,
    /// Connection-level limits (header read timeout, header count and size, HTTP/2 streams).
    pub limits: crate::server::ConnectionLimits,
    /// Runtime worker threads; `0` = one per CPU core. On a machine shared with its load generator and
    /// backends, `1` is often fastest.
    pub worker_threads: usize,
    /// Load shedding: global and per-route limits on requests in flight (`[server.load_shed]`).
    pub load_shed: crate::resilience::LoadShedConfig,
    /// TLS termination (`[server.tls]`); absent = plain HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::tls::ServerTlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout_ms: 5_000,
            max_body_bytes: 1024 * 1024,
            shutdown_grace_s: 10,
            drain_delay_ms: 0,
            max_uri_bytes: 8 * 1024,
            limits: crate::server::ConnectionLimits::default(),
            worker_threads: 0,
            load_shed: Default::default(),
            tls: None,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable text; coloured only when stderr is a terminal (never ANSI codes in files or pipes).
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Output format.
    pub log_format: LogFormat,
    /// Filter directive (`info`, `bff_core=debug,warn`, ...); `RUST_LOG` wins when set. Access lines use the
    /// target `bff::access`.
    pub log_level: String,
    /// Add a `Server-Timing` header (total and per-part durations and outcomes) to every response, for
    /// browser devtools. Off by default: it tells clients how the response was composed.
    pub server_timing: bool,
    /// OpenTelemetry trace export over OTLP/HTTP (`[telemetry.otlp]`); off while no endpoint is set.
    pub otlp: crate::otel::OtlpConfig,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Pretty,
            log_level: "info".into(),
            server_timing: false,
            otlp: crate::otel::OtlpConfig::default(),
        }
    }
}

/// One load error naming the key as written in the file (`server.listen`), not figment's interpolation with
/// the internal profile name (`default.server.listen`), and where the value came from.
fn describe(e: figment::Error) -> String {
    let mut text = e.kind.to_string();
    if !e.path.is_empty() {
        text.push_str(&format!(" for key `{}`", e.path.join(".")));
    }
    if let Some(md) = &e.metadata {
        match &md.source {
            Some(source) => text.push_str(&format!(" in {source} {}", md.name)),
            None => text.push_str(&format!(" in {}", md.name)),
        }
    }
    text
}

/// The environment variable prefix: `BFF_SERVER__LISTEN` sets `server.listen`.
pub const ENV_PREFIX: &str = "BFF_";

impl BffConfig {
    /// The figment of `defaults` < `file` (if any) < `BFF_*` environment variables.
    pub fn figment(defaults: &BffConfig, file: Option<&Path>) -> Figment {
        let mut figment = Figment::from(Serialized::defaults(defaults));
        if let Some(path) = file {
            figment = figment.merge(Toml::file_exact(path));
        }
        figment.merge(Env::prefixed(ENV_PREFIX).split("__"))
    }

    /// Loads and validates: `defaults` < `file` < environment.
    pub fn load(defaults: &BffConfig, file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_figment(Self::figment(defaults, file))
    }

    /// Marks the downstream `name` (if configured) as shared — its answers are the same for every caller, so
    /// they are cached once and batched across requests — fresh for `ttl_s` and served up to
    /// `stale_if_error_s` stale when it fails.
    pub fn share_cache(&mut self, name: &str, ttl_s: u64, stale_if_error_s: u64) {
        if let Some(d) = self.downstreams.get_mut(name) {
            d.cache.shared = true;
            d.cache.ttl_s = ttl_s;
            d.cache.stale_if_error_s = stale_if_error_s;
        }
    }

    /// Extracts and validates a configuration from any figment.
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: BffConfig = figment.extract().map_err(|e| {
            ConfigError::Load(e.into_iter().map(describe).collect::<Vec<_>>().join("; "))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges and cross-references; the error names the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if s.request_timeout_ms == 0 || s.request_timeout_ms > 600_000 {
            return Err(ConfigError::invalid(
                "server.request_timeout_ms",
                "must be between 1 and 600000",
            ));
        }
        if s.max_uri_bytes < 256 {
            return Err(ConfigError::invalid(
                "server.max_uri_bytes",
                "must be at least 256",
            ));
        }
        s.limits.validate("server.limits")?;
        s.load_shed.validate("server.load_shed")?;
        if let Some(tls) = &s.tls {
            tls.validate()?;
        }
        self.body.validate()?;
        self.idempotency.validate()?;
        self.streams.validate()?;
        self.live.validate()?;
        self.telemetry.otlp.validate("telemetry.otlp")?;
        for (name, d) in &self.downstreams {
            d.validate(name)?;
        }
        let client_ca = s.tls.as_ref().is_some_and(|t| t.client_ca_file.is_some());
        self.auth.validate(&self.downstreams, client_ca)?;
        crate::routes::config::validate_paths(&self.routes, &self.aggregates)?;
        crate::routes::config::validate(&self.routes, &self.downstreams)?;
        crate::aggregate::config::validate(&self.aggregates, &self.downstreams)?;
        for (i, origin) in self.cors.allowed_origins.iter().enumerate() {
            if !crate::cors::is_exact_origin(origin) {
                return Err(ConfigError::invalid(
                    format!("cors.allowed_origins[{i}]"),
                    "must be an exact origin like `https://app.example.com` (no wildcard, no path)",
                ));
            }
        }
        for (i, h) in self
            .cors
            .allowed_headers
            .iter()
            .chain(&self.cors.expose_headers)
            .enumerate()
        {
            if axum::http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(ConfigError::invalid(
                    format!("cors headers[{i}]"),
                    "not a valid header name",
                ));
            }
        }
        tracing_subscriber::EnvFilter::try_new(&self.telemetry.log_level)
            .map_err(|e| ConfigError::invalid("telemetry.log_level", e.to_string()))?;
        self.rate_limit.validate()?;
        self.cache.validate()?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return figment::Error by design.
mod tests {
    use super::*;
    use figment::Jail;

    fn defaults() -> BffConfig {
        let mut c = BffConfig::default();
        c.downstreams.insert(
            "users".into(),
            DownstreamConfig::at("http://127.0.0.1:7001"),
        );
        c
    }

    /// The file overrides the defaults and the environment overrides the file.
    #[test]
    fn layering_defaults_file_env() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "gw.toml",
                "[server]\nrequest_timeout_ms = 1234\n[downstreams.users]\nurl = \"http://10.0.0.1:1\"\n",
            )?;
            jail.set_env("BFF_DOWNSTREAMS__USERS__URL", "http://10.0.0.2:2");
            let c = BffConfig::load(&defaults(), Some(Path::new("gw.toml"))).expect("valid");
            assert_eq!(c.server.request_timeout_ms, 1234);
            assert_eq!(c.downstreams["users"].url, "http://10.0.0.2:2");
            assert_eq!(c.downstreams["users"].timeout_ms, 2_000);
            Ok(())
        });
    }

    /// A load error names the key as written (`server.request_timeout_ms`), never with figment's internal
    /// profile prefix (`default.`).
    #[test]
    fn load_errors_name_real_keys() {
        Jail::expect_with(|jail| {
            jail.create_file("gw.toml", "[server]\nrequest_timeout_ms = \"soon\"\n")?;
            let e = BffConfig::load(&defaults(), Some(Path::new("gw.toml"))).unwrap_err();
            let text = e.to_string();
            assert!(text.contains("`server.request_timeout_ms`"), "{text}");
            assert!(!text.contains("default."), "{text}");
            jail.set_env("BFF_SERVER__MAX_URI_BYTES", "many");
            let e = BffConfig::load(&defaults(), None).unwrap_err().to_string();
            assert!(
                e.contains("`server.max_uri_bytes`") && !e.contains("default."),
                "{e}"
            );
            Ok(())
        });
    }

    /// An unknown key in the file is an error that names it.
    #[test]
    fn unknown_key_is_named() {
        Jail::expect_with(|jail| {
            jail.create_file("gw.toml", "[server]\nlisten_port = 1\n")?;
            let e = BffConfig::load(&defaults(), Some(Path::new("gw.toml"))).unwrap_err();
            assert!(e.to_string().contains("listen_port"), "{e}");
            Ok(())
        });
    }

    /// An unknown environment key is an error too.
    #[test]
    fn unknown_env_key_is_named() {
        Jail::expect_with(|jail| {
            jail.set_env("BFF_SERVER__BOGUS", "1");
            let e = BffConfig::load(&defaults(), None).unwrap_err();
            assert!(e.to_string().contains("bogus"), "{e}");
            Ok(())
        });
    }

    /// Out-of-range values are rejected with their key.
    #[test]
    fn invalid_values_are_named() {
        let mut c = defaults();
        c.downstreams.get_mut("users").unwrap().url = "ftp://x".into();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("downstreams.users.url")
        );
        let mut c = defaults();
        c.auth.mode = AuthMode::Jwt;
        c.auth.jwt.audience = "bff-web".into();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("auth.jwt.jwks_downstream")
        );
        c.auth.jwt.jwks_downstream = "users".into();
        c.auth.jwt.algorithms = vec!["none".into()];
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("auth.jwt.algorithms")
        );
        c.auth.jwt.algorithms = vec!["HS256".into()];
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("auth.jwt.algorithms")
        );
        c.auth.jwt.algorithms = vec!["RS256".into()];
        assert!(c.validate().is_ok());
    }
}
