//! Typed configuration: built-in defaults < TOML file < `BFF_SECTION__KEY` environment variables, loaded with
//! figment, unknown keys rejected, then validated into a usable value or an error that names the bad key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use crate::aggregate::config::{AggregateConfig, AggregatePartConfig, MergeMode};

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
    pub cache: crate::cache::CacheConfig,
    /// The admin listener: metrics, probes, redacted effective configuration (`[admin]`).
    pub admin: crate::admin::AdminConfig,
    /// Limits of JSON request bodies of commands (size after decompression, nesting, gzip routes).
    pub body: crate::body::BodyConfig,
    /// `Idempotency-Key` records of commands: store (memory or Redis), time to live, lock time.
    pub idempotency: crate::idempotency::IdempotencyConfig,
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

/// One downstream service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DownstreamConfig {
    /// Base URL (`http://` or `https://`), e.g. `http://127.0.0.1:7001`; paths are appended to it.
    pub url: String,
    /// Timeout of one call (connect + answer + body), in milliseconds; the request budget may cut it shorter.
    pub timeout_ms: u64,
    /// Timeout of establishing a connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Largest accepted response body, in bytes; a larger answer is a bad answer (502).
    pub max_response_bytes: usize,
    /// Bulkhead, retries, circuit breaker, instances and their health (`[downstreams.<name>.resilience]`).
    pub resilience: crate::resilience::ResilienceConfig,
    /// Response cache, coalescing and batching of this downstream's GETs (`[downstreams.<name>.cache]`).
    pub cache: crate::cache::DownstreamCacheConfig,
    /// TLS towards `https://` URLs: extra CA, client certificate (`[downstreams.<name>.tls]`).
    pub tls: crate::tls::DownstreamTlsConfig,
    /// HTTP version: `auto` (HTTP/2 if offered by ALPN over TLS), `always` (also `h2c` on plain HTTP), `never`.
    pub http2: crate::tls::Http2Mode,
    /// Media types accepted for a successful answer's `Content-Type` (compared without parameters, case
    /// insensitive); any other, or none, is a bad answer (502, or the part is dropped when optional). Empty =
    /// no check.
    pub json_content_types: Vec<String>,
}

impl Default for DownstreamConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            timeout_ms: 2_000,
            connect_timeout_ms: 500,
            max_response_bytes: 4 * 1024 * 1024,
            resilience: Default::default(),
            cache: Default::default(),
            tls: Default::default(),
            http2: Default::default(),
            json_content_types: vec!["application/json".into()],
        }
    }
}

impl DownstreamConfig {
    /// A downstream at `url` with default policy.
    pub fn at(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }
}

/// Which credential clients present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// No authentication (only for development and tests).
    #[default]
    None,
    /// `Authorization: Bearer <JWT>`, verified against a JWKS.
    Jwt,
    /// `x-api-key: <key>`, looked up among the configured hashed keys; with `[[auth.client_certs]]`, a
    /// caller whose verified client certificate matches an entry needs no key.
    ApiKey,
    /// A verified client certificate (mTLS, `server.tls.client_ca_file`) matching an `[[auth.client_certs]]`
    /// entry; no API keys.
    ClientCert,
}

/// How clients authenticate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The credential this gateway accepts.
    pub mode: AuthMode,
    /// JWT verification (used when `mode = "jwt"`).
    pub jwt: JwtConfig,
    /// Accepted API keys (used when `mode = "api_key"`), stored as SHA-256 hashes.
    pub api_keys: Vec<ApiKeyConfig>,
    /// Partners authenticated by client certificate (`mode = "client_cert"`, or alongside API keys).
    pub client_certs: Vec<ClientCertConfig>,
    /// Browser sessions: the gateway as the browser's OpenID Connect client (`enabled = true`).
    pub session: crate::session::SessionConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::None,
            jwt: JwtConfig::default(),
            api_keys: Vec::new(),
            client_certs: Vec::new(),
            session: crate::session::SessionConfig::default(),
        }
    }
}

/// JWT verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// Name of the downstream that serves the JWKS (its timeout and size cap apply to the fetch).
    pub jwks_downstream: String,
    /// Path of the JWKS document on that downstream (unused with `discovery`).
    pub jwks_path: String,
    /// Find the JWKS by OpenID Connect discovery: `GET /.well-known/openid-configuration` on the
    /// `jwks_downstream` must announce `issuer` and gives the `jwks_uri` (https; may be another host).
    pub discovery: bool,
    /// Required `iss` claim.
    pub issuer: String,
    /// Required `aud` claim: the client this gateway serves, e.g. `bff-web`.
    pub audience: String,
    /// Accepted signature algorithms (explicit allow-list): any of `RS256`, `RS384`, `RS512`, `PS256`, `ES256`,
    /// `ES384`, `EdDSA`. `none` and HMAC algorithms are refused.
    pub algorithms: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds (at most 300).
    pub leeway_s: u64,
    /// Minimum interval between two JWKS fetches triggered by an unknown `kid`, in milliseconds.
    pub jwks_min_refresh_ms: u64,
    /// Age after which the cached JWKS is refreshed, in seconds: in the background, while the cached keys
    /// keep verifying.
    pub jwks_max_age_s: u64,
    /// Longest a request with an unknown `kid` waits for a running JWKS refresh, in milliseconds (then 401).
    pub jwks_unknown_kid_wait_ms: u64,
    /// Verified tokens remembered, so a client's repeated token skips the signature check (`0` = off).
    pub verified_cache_entries: u64,
    /// How long a verified token is remembered at most, in seconds (never past its `exp`). Bounds how long a
    /// token signed by a key removed from the JWKS is still accepted.
    pub verified_cache_ttl_s: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            jwks_downstream: "identity".into(),
            jwks_path: "/.well-known/jwks.json".into(),
            discovery: false,
            issuer: "bff-dev-idp".into(),
            audience: String::new(),
            algorithms: vec!["RS256".into(), "ES256".into()],
            leeway_s: 30,
            jwks_min_refresh_ms: 1_000,
            jwks_max_age_s: 300,
            jwks_unknown_kid_wait_ms: 500,
            verified_cache_entries: 10_000,
            verified_cache_ttl_s: 60,
        }
    }
}

/// One accepted API key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Lower-case hex SHA-256 of the key (the key itself is never stored).
    pub key_sha256: String,
    /// The partner the key belongs to, e.g. `acme`.
    pub partner_id: String,
    /// The partner's tier, e.g. `gold`.
    pub tier: String,
    /// Scopes granted to the key.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// One partner authenticated by client certificate: a certificate verified against
/// `server.tls.client_ca_file` whose subject common name equals `subject` (or which carries the subject
/// alternative name `san`) is this partner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertConfig {
    /// Exact subject common name (`CN`) of the certificate; set this or `san`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Exact subject alternative name (DNS name, e-mail, URI or IP address); set this or `subject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub san: Option<String>,
    /// The partner the certificate belongs to, e.g. `acme`.
    pub partner_id: String,
    /// The partner's tier, e.g. `gold`.
    pub tier: String,
    /// Scopes granted to the certificate.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// A declarative route: a public path forwarded to a downstream path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Public path, with `{name}` parameters, e.g. `/api/users/{id}/card`.
    pub path: String,
    /// The downstream to forward to.
    pub downstream: String,
    /// Path on the downstream, with the same `{name}` parameters, e.g. `/users/{id}`.
    pub downstream_path: String,
    /// Query parameters passed through (others are dropped).
    #[serde(default)]
    pub query_allow: Vec<String>,
    /// Request headers passed through (identity and hop-by-hop headers never are).
    #[serde(default)]
    pub header_allow: Vec<String>,
    /// Response fields kept (dotted paths, e.g. `price.amount_cents`); empty keeps the whole body.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Scopes the caller must hold.
    #[serde(default)]
    pub scopes: Vec<String>,
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

/// A configuration that could not be loaded or is invalid; the message names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Parsing or merging failed (syntax, unknown key, wrong type).
    #[error("{0}")]
    Load(String),
    /// A value is out of its allowed range or inconsistent.
    #[error("invalid value for key `{key}`: {reason}")]
    Invalid {
        /// Dotted path of the key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }
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
            ConfigError::Load(
                e.into_iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The public paths of declarative routes and aggregations: valid templates, none the same route as a
    /// built-in path or as another one (the router would refuse to start).
    fn validate_paths(&self) -> Result<(), ConfigError> {
        let paths = self
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("routes[{i}].path"), &r.path))
            .chain(
                self.aggregates
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (format!("aggregates[{i}].path"), &a.path)),
            );
        let mut seen: Vec<(String, &String)> = Vec::new();
        for (key, path) in paths {
            crate::routes::check_template(path).map_err(|r| ConfigError::invalid(&key, r))?;
            if let Some(builtin) = crate::edge::PUBLIC_PATHS
                .iter()
                .find(|b| crate::routes::templates_overlap(b, path))
            {
                return Err(ConfigError::invalid(
                    key,
                    format!("shadows the built-in path `{builtin}`"),
                ));
            }
            if let Some((other, _)) = seen
                .iter()
                .find(|(_, p)| crate::routes::templates_overlap(p, path))
            {
                return Err(ConfigError::invalid(
                    key,
                    format!("is the same route as `{other}`"),
                ));
            }
            seen.push((key, path));
        }
        Ok(())
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
        self.telemetry.otlp.validate("telemetry.otlp")?;
        for (name, d) in &self.downstreams {
            let key = |k: &str| format!("downstreams.{name}.{k}");
            match url::Url::parse(&d.url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => {
                    return Err(ConfigError::invalid(
                        key("url"),
                        "must be an absolute http(s) URL",
                    ));
                }
            }
            if d.timeout_ms == 0 {
                return Err(ConfigError::invalid(key("timeout_ms"), "must be positive"));
            }
            if d.connect_timeout_ms == 0 {
                return Err(ConfigError::invalid(
                    key("connect_timeout_ms"),
                    "must be positive",
                ));
            }
            if d.max_response_bytes == 0 {
                return Err(ConfigError::invalid(
                    key("max_response_bytes"),
                    "must be positive",
                ));
            }
            for (j, media) in d.json_content_types.iter().enumerate() {
                let valid = media.split_once('/').is_some_and(|(t, s)| {
                    let token = |x: &str| {
                        !x.is_empty()
                            && x.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
                    };
                    token(t) && token(s)
                });
                if !valid {
                    return Err(ConfigError::invalid(
                        format!("downstreams.{name}.json_content_types[{j}]"),
                        "must be a media type like `application/json`",
                    ));
                }
            }
            d.resilience.validate(&key("resilience"))?;
            d.cache.validate(&key("cache"))?;
            d.tls.validate(&key("tls"), &d.url)?;
        }
        let auth = &self.auth;
        if auth.mode == AuthMode::Jwt {
            let jwt = &auth.jwt;
            if !self.downstreams.contains_key(&jwt.jwks_downstream) {
                return Err(ConfigError::invalid(
                    "auth.jwt.jwks_downstream",
                    "names no configured downstream",
                ));
            }
            if jwt.audience.is_empty() {
                return Err(ConfigError::invalid(
                    "auth.jwt.audience",
                    "must not be empty",
                ));
            }
            if jwt.issuer.is_empty() {
                return Err(ConfigError::invalid("auth.jwt.issuer", "must not be empty"));
            }
            if jwt.algorithms.is_empty() {
                return Err(ConfigError::invalid(
                    "auth.jwt.algorithms",
                    "must not be empty",
                ));
            }
            for alg in &jwt.algorithms {
                crate::auth::jwt::parse_algorithm(alg)
                    .map_err(|reason| ConfigError::invalid("auth.jwt.algorithms", reason))?;
            }
            if jwt.leeway_s > 300 {
                return Err(ConfigError::invalid(
                    "auth.jwt.leeway_s",
                    "must be at most 300",
                ));
            }
            let bounded = [
                ("jwks_min_refresh_ms", jwt.jwks_min_refresh_ms, 0, 3_600_000),
                ("jwks_max_age_s", jwt.jwks_max_age_s, 0, 604_800),
                (
                    "jwks_unknown_kid_wait_ms",
                    jwt.jwks_unknown_kid_wait_ms,
                    0,
                    5_000,
                ),
                ("verified_cache_ttl_s", jwt.verified_cache_ttl_s, 0, 86_400),
            ];
            for (key, value, min, max) in bounded {
                if !(min..=max).contains(&value) {
                    return Err(ConfigError::invalid(
                        format!("auth.jwt.{key}"),
                        format!("must be between {min} and {max}"),
                    ));
                }
            }
        }
        auth.session
            .validate(auth.mode == AuthMode::Jwt && auth.jwt.discovery)?;
        if auth.mode == AuthMode::ApiKey && auth.api_keys.is_empty() {
            return Err(ConfigError::invalid(
                "auth.api_keys",
                "at least one key is needed",
            ));
        }
        if auth.mode == AuthMode::ClientCert && auth.client_certs.is_empty() {
            return Err(ConfigError::invalid(
                "auth.client_certs",
                "at least one entry is needed",
            ));
        }
        let client_ca = s.tls.as_ref().and_then(|t| t.client_ca_file.as_ref());
        if !auth.client_certs.is_empty() && client_ca.is_none() {
            return Err(ConfigError::invalid(
                "auth.client_certs",
                "needs `server.tls.client_ca_file` (client certificates are verified in the TLS handshake)",
            ));
        }
        for (i, c) in auth.client_certs.iter().enumerate() {
            if c.subject.is_some() == c.san.is_some() {
                return Err(ConfigError::invalid(
                    format!("auth.client_certs[{i}]"),
                    "set exactly one of `subject` and `san`",
                ));
            }
            if c.subject.as_deref().or(c.san.as_deref()) == Some("") {
                return Err(ConfigError::invalid(
                    format!("auth.client_certs[{i}]"),
                    "`subject` / `san` must not be empty",
                ));
            }
            if !crate::auth::is_header_safe(&c.partner_id) || !crate::auth::is_header_safe(&c.tier)
            {
                return Err(ConfigError::invalid(
                    format!("auth.client_certs[{i}].partner_id"),
                    "partner_id and tier must be 1 to 256 visible ASCII characters",
                ));
            }
        }
        for (i, k) in auth.api_keys.iter().enumerate() {
            let valid = k.key_sha256.len() == 64
                && k.key_sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !valid {
                return Err(ConfigError::invalid(
                    format!("auth.api_keys[{i}].key_sha256"),
                    "must be 64 lower-case hex digits",
                ));
            }
            if k.partner_id.is_empty() {
                return Err(ConfigError::invalid(
                    format!("auth.api_keys[{i}].partner_id"),
                    "must not be empty",
                ));
            }
        }
        self.validate_paths()?;
        for (i, r) in self.routes.iter().enumerate() {
            let key = |k: &str| format!("routes[{i}].{k}");
            for (j, h) in r.header_allow.iter().enumerate() {
                if !crate::routes::is_forwardable_header(h) {
                    return Err(ConfigError::invalid(
                        format!("routes[{i}].header_allow[{j}]"),
                        "credential, identity (`x-bff-*`), hop-by-hop and tracing headers are never forwarded",
                    ));
                }
            }
            if !r.downstream_path.starts_with('/') {
                return Err(ConfigError::invalid(
                    key("downstream_path"),
                    "must start with `/`",
                ));
            }
            if !self.downstreams.contains_key(&r.downstream) {
                return Err(ConfigError::invalid(
                    key("downstream"),
                    "names no configured downstream",
                ));
            }
            for param in crate::routes::path_params(&r.downstream_path) {
                if !crate::routes::path_params(&r.path).any(|p| p == param) {
                    return Err(ConfigError::invalid(
                        key("downstream_path"),
                        format!("parameter `{param}` does not occur in `path`"),
                    ));
                }
            }
        }
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
