//! Assembling a gateway: from a validated [`BffConfig`] to the downstream clients a gateway crate composes
//! with, and from the gateway's API router to the complete, edge-wrapped [`Router`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;

use axum::http::{HeaderName, header};

use crate::auth::discovery::{Discovery, JwksSource};
use crate::auth::{ApiKeys, Authenticator, ClientCerts, JwtVerifier};
use crate::cache::Store;
use crate::config::{AuthMode, BffConfig, ConfigError};
use crate::downstream::{Downstream, HttpClient, tls_client};
use crate::edge::{EdgeLayer, EdgeState};
use crate::error::BffError;
use crate::metrics::Metrics;
use crate::resilience::shed::LoadShedder;
use crate::tls::{DownstreamTlsConfig, Http2Mode};

/// A gateway under construction: config, downstream clients and the credential check.
#[derive(Debug)]
pub struct Gateway {
    config: BffConfig,
    downstreams: BTreeMap<String, Downstream>,
    auth: Authenticator,
    /// The metrics served at `/metrics` on the admin listener.
    metrics: Arc<Metrics>,
    /// `Idempotency-Key` records of the gateway's commands.
    idempotency: Arc<crate::idempotency::Idempotency>,
    /// Trace export, when `[telemetry.otlp]` is configured.
    tracer: Option<Arc<crate::otel::Tracer>>,
    /// Browser sessions, when `[auth.session]` is enabled.
    sessions: Option<Arc<crate::session::Sessions>>,
    /// Open event streams per caller, and their drain signal (see [`crate::streams`]).
    streams: Arc<crate::streams::Streams>,
    /// WebSocket tickets, open connections per caller, and their drain signal (see [`crate::live`]).
    live: Arc<crate::live::Live>,
}

impl Gateway {
    /// Validates `config` and builds the downstream clients (sharing connection pools) and the authenticator.
    pub fn new(config: BffConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        // A reload lends the running gateway's metrics, so series continue across rebuilds.
        let metrics = crate::admin::lent_metrics().unwrap_or_default();
        // One response store for all downstreams: its byte bound is the gateway's.
        let store = Arc::new(Store::new(&config.cache, &metrics));
        // One connection pool per distinct (connect timeout, TLS settings, HTTP/2 mode): downstreams with the
        // same (by default all) share one pool; different TLS settings never share a connection.
        type PoolKey = (u64, DownstreamTlsConfig, Http2Mode);
        let mut clients: BTreeMap<PoolKey, HttpClient> = BTreeMap::new();
        let mut downstreams: BTreeMap<String, Downstream> = BTreeMap::new();
        for (name, c) in &config.downstreams {
            let key = (c.connect_timeout_ms, c.tls.clone(), c.effective_http2());
            let client = match clients.get(&key) {
                Some(client) => client.clone(),
                None => {
                    let client = tls_client(
                        Duration::from_millis(c.connect_timeout_ms),
                        &format!("downstreams.{name}.tls"),
                        &c.tls,
                        c.effective_http2(),
                    )?;
                    clients.insert(key, client.clone());
                    client
                }
            };
            downstreams.insert(
                name.clone(),
                Downstream::with_store(name, c, client, &store, &metrics),
            );
        }
        let auth = match config.auth.mode {
            AuthMode::None => Authenticator::None,
            AuthMode::Jwt => {
                let jwt = &config.auth.jwt;
                let jwks = downstreams
                    .get(&jwt.jwks_downstream)
                    .cloned()
                    .ok_or_else(|| missing("auth.jwt.jwks_downstream"))?;
                // An unknown `kid` never waits past the request's deadline: the edge bounds authentication.
                let jwt = jwt.clone();
                let identity = config.downstreams.get(&jwt.jwks_downstream).map(|c| {
                    (
                        c,
                        clients.get(&(c.connect_timeout_ms, c.tls.clone(), c.effective_http2())),
                    )
                });
                let source = match identity {
                    Some((c, Some(client))) if jwt.discovery => JwksSource::Discovery(Box::new(
                        Discovery::new(jwks, c.clone(), client.clone(), jwt.issuer.clone()),
                    )),
                    _ => JwksSource::Direct(jwks),
                };
                Authenticator::Jwt(Arc::new(JwtVerifier::new(jwt, source)))
            }
            AuthMode::ApiKey if config.auth.client_certs.is_empty() => {
                Authenticator::ApiKey(Arc::new(ApiKeys::new(&config.auth.api_keys)))
            }
            AuthMode::ApiKey => Authenticator::ClientCert {
                certs: Arc::new(ClientCerts::new(&config.auth.client_certs)),
                keys: Some(Arc::new(ApiKeys::new(&config.auth.api_keys))),
            },
            AuthMode::ClientCert => Authenticator::ClientCert {
                certs: Arc::new(ClientCerts::new(&config.auth.client_certs)),
                keys: None,
            },
        };
        let sessions = match (&auth, config.auth.session.enabled) {
            (Authenticator::Jwt(verifier), true) => {
                let identity = downstreams
                    .get(&config.auth.jwt.jwks_downstream)
                    .cloned()
                    .ok_or_else(|| missing("auth.jwt.jwks_downstream"))?;
                Some(Arc::new(crate::session::Sessions::new(
                    &config.auth.session,
                    &config.auth.jwt.audience,
                    &config.auth.jwt.issuer,
                    identity,
                    verifier.clone(),
                    config.server.tls.is_some(),
                )?))
            }
            _ => None,
        };
        let idempotency = Arc::new(crate::idempotency::Idempotency::new(&config.idempotency)?);
        let tracer = crate::otel::Tracer::new(&config.telemetry.otlp, &metrics);
        let streams = crate::streams::Streams::new(&config.streams);
        let live = crate::live::Live::new(
            &config.live,
            &config.cors.allowed_origins,
            Duration::from_millis(config.server.request_timeout_ms),
            metrics.clone(),
        );
        Ok(Self {
            config,
            downstreams,
            auth,
            metrics,
            idempotency,
            tracer,
            sessions,
            streams,
            live,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BffConfig {
        &self.config
    }

    /// The metrics registry served at `/metrics` (a gateway may register its own counters).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The `Idempotency-Key` records handlers run their commands through (see [`crate::idempotency`]).
    pub fn idempotency(&self) -> Arc<crate::idempotency::Idempotency> {
        self.idempotency.clone()
    }

    /// The gateway's event streams: admission per caller and the SSE relay (see [`crate::streams`]).
    pub fn streams(&self) -> Arc<crate::streams::Streams> {
        self.streams.clone()
    }

    /// The gateway's WebSocket connections: tickets, admission per caller, the connection runner (see
    /// [`crate::live`]).
    pub fn live(&self) -> Arc<crate::live::Live> {
        self.live.clone()
    }

    /// The client of the downstream named `name`, or an error naming the missing `downstreams.<name>` key.
    pub fn downstream(&self, name: &str) -> Result<Downstream, ConfigError> {
        self.downstreams
            .get(name)
            .cloned()
            .ok_or_else(|| missing(&format!("downstreams.{name}")))
    }

    /// The complete router: `api` (the gateway's composed endpoints), the declarative routes of the config,
    /// `/healthz`, `/readyz` (probing `ready_on`), `/openapi.json` and `/docs`, a problem+json fallback, all
    /// wrapped by the edge pipeline (see [`crate::edge`]). The admin side (metrics, readiness, redacted
    /// config) goes to an enclosing [`crate::admin::capture`].
    ///
    /// `api` is an [`crate::api::Api`] (routes with declared scopes, which core enforces and writes into the
    /// document) or a plain [`Router`].
    pub fn into_router(
        self,
        api: impl Into<crate::api::Api>,
        openapi: utoipa::openapi::OpenApi,
        ready_on: &[&str],
    ) -> Result<Router, ConfigError> {
        let (api, operations, ticket_paths) = api.into().into_parts();
        let ready: Vec<Downstream> = ready_on
            .iter()
            .map(|n| self.downstream(n))
            .collect::<Result<_, _>>()?;
        let readiness = Arc::new(crate::health::Readiness::new(
            ready,
            crate::admin::lent_draining(),
        ));
        crate::admin::offer(
            crate::admin::Admin::new(self.metrics.clone(), readiness.clone(), &self.config)
                .with_tracer(self.tracer.clone())
                .with_session_store(self.sessions.as_ref().and_then(|s| s.memory_store())),
        );
        // A configured path that is one of the gateway's own routes would make the router panic: name it.
        let configured = (self.config.routes.iter().map(|r| &r.path))
            .enumerate()
            .map(|(i, p)| (format!("routes[{i}].path"), p))
            .chain(
                (self.config.aggregates.iter().map(|a| &a.path))
                    .enumerate()
                    .map(|(i, p)| (format!("aggregates[{i}].path"), p)),
            );
        for (key, path) in configured {
            if let Some(own) = (openapi.paths.paths.keys())
                .chain(operations.iter().map(|o| &o.path))
                .find(|own| crate::routes::templates_overlap(own, path))
            {
                return Err(ConfigError::Invalid {
                    key,
                    reason: format!("shadows the gateway's route `{own}`"),
                });
            }
        }
        let routes = (&self.config.routes, &self.config.aggregates);
        let downstreams = &self.downstreams;
        // Whatever slipped past validation, the router's own refusal (a panic) becomes a configuration error.
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let declarative = crate::routes::router(
                routes.0,
                |n| downstreams.get(n).cloned(),
                |n| (self.config.downstreams.get(n)).and_then(|d| d.descriptor_set.clone()),
            );
            let aggregates = crate::aggregate::router(routes.1, |n| downstreams.get(n).cloned());
            declarative.merge(aggregates)
        }))
        .map_err(|_| ConfigError::Invalid {
            key: "routes".into(),
            reason: "the declarative routes and aggregations cannot be combined into one router"
                .into(),
        })?;
        let state = Arc::new(EdgeState {
            auth: self.auth,
            budget: Duration::from_millis(self.config.server.request_timeout_ms),
            max_uri_bytes: self.config.server.max_uri_bytes,
            max_body_bytes: self.config.server.max_body_bytes,
            shed: LoadShedder::new(&self.config.server.load_shed),
            limiter: crate::ratelimit::RateLimiter::new(
                &self.config.rate_limit,
                self.config.auth.mode != AuthMode::None,
            ),
            vary_on: match self.config.auth.mode {
                AuthMode::None | AuthMode::ClientCert => None,
                AuthMode::Jwt => Some(header::AUTHORIZATION),
                AuthMode::ApiKey => Some(HeaderName::from_static(crate::auth::API_KEY_HEADER)),
            },
            metrics: self.metrics.clone(),
            server_timing: self.config.telemetry.server_timing,
            tracer: self.tracer.clone(),
            sessions: self.sessions.clone(),
            live: self.live.clone(),
            ticket_paths: ticket_paths.clone(),
        });
        let openapi = crate::openapi::complete(openapi, &self.config, &operations, &ticket_paths);
        let session_routes = self
            .sessions
            .as_ref()
            .map_or_else(Router::new, crate::session::Sessions::router);
        let router = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            Router::new()
                .merge(session_routes)
                .route("/healthz", get(crate::health::healthz))
                .route("/readyz", get(crate::health::readyz).with_state(readiness))
                .merge(crate::docs::router(openapi))
                .merge(built)
                .merge(api)
        }))
        .map_err(|_| ConfigError::Invalid {
            key: "routes".into(),
            reason: "a declarative route or aggregation is the same route as one of the gateway's"
                .into(),
        })?
        .fallback(|| async { BffError::NotFound })
        .method_not_allowed_fallback(|| async { BffError::MethodNotAllowed })
        // Every route's layers as one stack, applied once: each `Router::layer` call boxes the route again,
        // and a boxed route is cloned (with everything inside it) on each call, so seven separate calls cost
        // ~30 clones of boxed services per request (bench/notes.md). Outermost first:
        .layer(
            tower::ServiceBuilder::new()
                // Conditional GET outside compression, compression outside the edge: the ETag is the tag of
                // the exact bytes sent (one per content coding), and a 304 is never compressed.
                .layer(crate::etag::ConditionalLayer)
                .layer(crate::cache::client::compression(
                    &self.config.cache.compression,
                ))
                .layer(EdgeLayer(state))
                .layer(CatchPanicLayer::custom(|_| {
                    tracing::error!("handler panicked");
                    axum::response::IntoResponse::into_response(BffError::Internal)
                }))
                .layer(RequestBodyLimitLayer::new(
                    self.config.server.max_body_bytes,
                ))
                // The limits of typed JSON bodies, read by the `JsonBody` extractor.
                .layer(axum::Extension(crate::body::BodyLimits(Arc::new(
                    self.config.body.clone(),
                ))))
                // The idempotency records, read by the `Write` extractor.
                .layer(axum::Extension(self.idempotency.clone())),
        );
        // CORS sits outside the edge: preflights are answered before authentication.
        let router = match self.config.cors.layer() {
            Some(cors) => router.layer(cors),
            None => router,
        };
        // Served over TLS: every response tells browsers to come back over TLS only.
        let router = match &self.config.server.tls {
            Some(tls) => crate::tls::with_hsts(router, tls.hsts_max_age_s),
            None => router,
        };
        // Each handler, with the layers around it, built into its service once here instead of on every
        // request (axum does that per request for a router whose state was never given; bench/notes.md).
        Ok(router.with_state(()))
    }
}

fn missing(key: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        reason: "required by this gateway but not configured".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// A configuration using every section: two downstreams, JWT with browser sessions, a route, an
    /// aggregation, a rate-limit policy, CORS.
    fn base() -> Value {
        let mut config = BffConfig::default();
        for (name, port) in [("users", 1), ("identity", 2)] {
            config.downstreams.insert(
                name.into(),
                crate::config::DownstreamConfig::at(format!("http://127.0.0.1:{port}")),
            );
        }
        let mut value = serde_json::to_value(config).unwrap();
        value["auth"]["mode"] = json!("jwt");
        value["auth"]["jwt"]["audience"] = json!("bff-web");
        value["auth"]["jwt"]["discovery"] = json!(true);
        value["auth"]["session"]["enabled"] = json!(true);
        value["auth"]["session"]["redirect_uri"] = json!("https://app.example.com/bff/callback");
        value["routes"] = json!([{"path": "/api/u/{id}", "downstream": "users",
            "downstream_path": "/users/{id}", "header_allow": ["accept-language"]}]);
        value["aggregates"] = json!([{"path": "/api/agg/{id}", "parts": [
            {"name": "u", "downstream": "users", "path": "/users/{id}"}]}]);
        value["rate_limit"]["enabled"] = json!(true);
        value["rate_limit"]["policies"] =
            json!([{"name": "p", "by": ["ip"], "rate": 10, "period_s": 1, "burst": 10}]);
        value["cors"]["allowed_origins"] = json!(["https://app.example.com"]);
        value
    }

    /// The dotted paths of every leaf of `value`.
    fn leaves(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    prefix.push(k.clone());
                    leaves(v, prefix, out);
                    prefix.pop();
                }
            }
            Value::Array(items) if !items.is_empty() => {
                for (i, v) in items.iter().enumerate() {
                    prefix.push(i.to_string());
                    leaves(v, prefix, out);
                    prefix.pop();
                }
            }
            _ => out.push(prefix.clone()),
        }
    }

    fn set(value: &mut Value, path: &[String], new: Value) {
        let mut at = value;
        for key in path {
            at = match at {
                Value::Object(map) => map.entry(key.clone()).or_insert(Value::Null),
                Value::Array(items) => {
                    match key.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                        Some(item) => item,
                        None => return,
                    }
                }
                _ => return,
            };
        }
        *at = new;
    }

    /// Hostile numbers, for numeric keys.
    fn hostile_number() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(json!(0)),
            Just(json!(1)),
            Just(json!(u32::MAX)),
            Just(json!(u64::MAX)),
            Just(json!(i64::MAX)),
            Just(json!(usize::MAX / 2)),
            Just(json!(1u64 << 53)),
            Just(json!(0.0)),
            Just(json!(1e300)),
            any::<u64>().prop_map(|n| json!(n)),
            (0u64..100_000).prop_map(|n| json!(n)),
        ]
    }

    /// Hostile strings, for string keys (paths, header names, URLs, names, media types).
    fn hostile_string() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(json!("")),
            Just(json!("/")),
            Just(json!("/healthz")),
            Just(json!("/metrics")),
            Just(json!("/api/home")),
            Just(json!("/api/u/{x}")),
            Just(json!("/api/agg/{id}")),
            Just(json!("/a/{x}/{x}")),
            Just(json!("/a/:x")),
            Just(json!("/a/*x")),
            Just(json!("/a/{")),
            Just(json!("Authorization")),
            Just(json!("x-bff-user-id")),
            Just(json!("bad header")),
            Just(json!("users")),
            Just(json!("nobody")),
            Just(json!("http://127.0.0.1:1")),
            Just(json!("ftp://x")),
            Just(json!("text/html")),
            Just(json!("a{b")),
            "\\PC{0,12}".prop_map(Value::String),
        ]
    }

    /// A replacement for a leaf: of the leaf's own JSON type most of the time (so the configuration still
    /// loads and validation and assembly are what is tested), of another type sometimes.
    fn mutation() -> impl Strategy<Value = (Value, Value, bool, bool)> {
        (
            hostile_number(),
            hostile_string(),
            any::<bool>(),
            proptest::bool::weighted(0.1),
        )
    }

    fn replacement(
        old: &Value,
        (number, string, flag, wrong_type): (Value, Value, bool, bool),
    ) -> Value {
        match (old, wrong_type) {
            (Value::Number(_), false) => number,
            (Value::String(_), false) => string,
            (Value::Bool(_), false) => json!(flag),
            (Value::Number(_), true) => string,
            _ => number,
        }
    }

    fn leaf<'a>(value: &'a Value, path: &[String]) -> &'a Value {
        path.iter().fold(value, |at, key| match at {
            Value::Object(map) => map.get(key).unwrap_or(&Value::Null),
            Value::Array(items) => key
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i))
                .unwrap_or(&Value::Null),
            _ => &Value::Null,
        })
    }

    /// The base configuration itself loads and builds (so the property test mutates something meaningful).
    #[test]
    fn base_config_builds() {
        let config: BffConfig = serde_json::from_value(base()).expect("base loads");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _entered = runtime.enter();
        let _router = Gateway::new(config)
            .and_then(|g| g.into_router(Router::new(), Default::default(), &[]))
            .expect("base builds");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Whatever values a configuration holds (extreme numbers, wrong types, hostile paths and header
        /// names at any key), building a gateway from it never panics: it is either a router or a
        /// configuration error that names a key.
        #[test]
        fn generated_configs_never_panic(
            picks in proptest::collection::vec((any::<proptest::sample::Index>(), mutation()), 1..6)
        ) {
            let mut value = base();
            let mut paths = Vec::new();
            leaves(&value, &mut Vec::new(), &mut paths);
            for (index, new) in picks {
                let path = index.get(&paths).clone();
                let new = replacement(leaf(&value, &path), new);
                set(&mut value, &path, new);
            }
            let Ok(config) = serde_json::from_value::<BffConfig>(value.clone()) else {
                return Ok(());
            };
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let _entered = runtime.enter();
            let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut openapi = utoipa::openapi::OpenApi::default();
                openapi.paths.paths.insert("/api/home".into(), Default::default());
                Gateway::new(config).and_then(|g| {
                    g.into_router(Router::new().route("/api/home", get(|| async { "home" })), openapi, &[])
                })
            }));
            prop_assert!(built.is_ok(), "panicked on {}", value);
            if let Ok(Err(ConfigError::Invalid { key, .. })) = built {
                prop_assert!(!key.is_empty());
            }
        }
    }
}
