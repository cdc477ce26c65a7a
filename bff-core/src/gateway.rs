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

use crate::auth::{ApiKeys, Authenticator, JwtVerifier};
use crate::cache::Store;
use crate::config::{AuthMode, BffConfig, ConfigError};
use crate::downstream::{Downstream, http_client};
use crate::edge::{EdgeState, edge};
use crate::error::BffError;
use crate::metrics::Metrics;
use crate::resilience::shed::LoadShedder;

/// A gateway under construction: config, downstream clients and the credential check.
#[derive(Debug)]
pub struct Gateway {
    config: BffConfig,
    downstreams: BTreeMap<String, Downstream>,
    auth: Authenticator,
    /// The counters served at `/metrics`.
    metrics: Arc<Metrics>,
    /// `Idempotency-Key` records of the gateway's commands.
    idempotency: Arc<crate::idempotency::Idempotency>,
}

impl Gateway {
    /// Validates `config` and builds the downstream clients (sharing connection pools) and the authenticator.
    pub fn new(config: BffConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let metrics = Arc::new(Metrics::default());
        // One response store for all downstreams: its byte bound is the gateway's.
        let store = Arc::new(Store::new(&config.cache, &metrics));
        // One connection pool per distinct connect timeout: downstreams with the same (by default all) share
        // one pool, a downstream with its own connect timeout gets its own.
        let mut clients: BTreeMap<u64, crate::downstream::HttpClient> = BTreeMap::new();
        let downstreams: BTreeMap<String, Downstream> = config
            .downstreams
            .iter()
            .map(|(name, c)| {
                let client = clients
                    .entry(c.connect_timeout_ms)
                    .or_insert_with(|| http_client(Duration::from_millis(c.connect_timeout_ms)))
                    .clone();
                (
                    name.clone(),
                    Downstream::with_store(name, c, client, &store, &metrics),
                )
            })
            .collect();
        let auth = match config.auth.mode {
            AuthMode::None => Authenticator::None,
            AuthMode::Jwt => {
                let jwks = downstreams
                    .get(&config.auth.jwt.jwks_downstream)
                    .cloned()
                    .ok_or_else(|| missing("auth.jwt.jwks_downstream"))?;
                Authenticator::Jwt(Arc::new(JwtVerifier::new(config.auth.jwt.clone(), jwks)))
            }
            AuthMode::ApiKey => {
                Authenticator::ApiKey(Arc::new(ApiKeys::new(&config.auth.api_keys)))
            }
        };
        let idempotency = Arc::new(crate::idempotency::Idempotency::new(&config.idempotency)?);
        Ok(Self {
            config,
            downstreams,
            auth,
            metrics,
            idempotency,
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

    /// The client of the downstream named `name`, or an error naming the missing `downstreams.<name>` key.
    pub fn downstream(&self, name: &str) -> Result<Downstream, ConfigError> {
        self.downstreams
            .get(name)
            .cloned()
            .ok_or_else(|| missing(&format!("downstreams.{name}")))
    }

    /// The complete router: `api` (the gateway's composed endpoints), the declarative routes of the config,
    /// `/healthz`, `/readyz` (probing `ready_on`), `/openapi.json` and `/docs`, a problem+json fallback, all
    /// wrapped by the edge pipeline (see [`crate::edge`]).
    pub fn into_router(
        self,
        api: Router,
        openapi: utoipa::openapi::OpenApi,
        ready_on: &[&str],
    ) -> Result<Router, ConfigError> {
        let ready: Vec<Downstream> = ready_on
            .iter()
            .map(|n| self.downstream(n))
            .collect::<Result<_, _>>()?;
        let declarative =
            crate::routes::router(&self.config.routes, |n| self.downstreams.get(n).cloned());
        let aggregates = crate::aggregate::router(&self.config.aggregates, |n| {
            self.downstreams.get(n).cloned()
        });
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
                AuthMode::None => None,
                AuthMode::Jwt => Some(header::AUTHORIZATION),
                AuthMode::ApiKey => Some(HeaderName::from_static(crate::auth::API_KEY_HEADER)),
            },
        });
        let router = Router::new()
            .route("/healthz", get(crate::health::healthz))
            .route(
                "/readyz",
                get(crate::health::readyz).with_state(Arc::new(ready)),
            )
            .route(
                "/metrics",
                get(crate::metrics::handler).with_state(self.metrics.clone()),
            )
            .merge(crate::docs::router(openapi))
            .merge(declarative)
            .merge(aggregates)
            .merge(api)
            .fallback(|| async { BffError::NotFound })
            .method_not_allowed_fallback(|| async { BffError::MethodNotAllowed })
            // The limits of typed JSON bodies, read by the `JsonBody` extractor.
            .layer(axum::Extension(crate::body::BodyLimits(Arc::new(
                self.config.body.clone(),
            ))))
            .layer(RequestBodyLimitLayer::new(
                self.config.server.max_body_bytes,
            ))
            .layer(CatchPanicLayer::custom(|_| {
                tracing::error!("handler panicked");
                axum::response::IntoResponse::into_response(BffError::Internal)
            }))
            .layer(axum::middleware::from_fn_with_state(state, edge))
            // Compression outside the edge, and conditional GET outside compression: the ETag is the tag of
            // the exact bytes sent (one per content coding), and a 304 is never compressed.
            .layer(crate::cache::client::compression(
                &self.config.cache.compression,
            ))
            .layer(axum::middleware::from_fn(crate::etag::conditional));
        // CORS sits outside the edge: preflights are answered before authentication.
        Ok(match self.config.cors.layer() {
            Some(cors) => router.layer(cors),
            None => router,
        })
    }
}

fn missing(key: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        reason: "required by this gateway but not configured".into(),
    }
}
