//! Clients of the downstream services. One [`Downstream`] per named service carries its whole call policy,
//! so handlers only compose: per-call timeout bounded by the request deadline (and announced to the
//! downstream in `x-bff-deadline-ms`), bulkhead, circuit breaker, retries of idempotent calls within a
//! budget, optional hedging, balancing over several instances with passive and active health (see
//! [`crate::resilience`]); no redirects, response size cap; request id, trace context and the verified
//! identity propagated; GETs through the response cache with coalescing and stale serving (see
//! [`crate::cache`]), each answer's cache directives recorded on the request context.
//!
//! Every call is one `CallRequest` (`request.rs`) sent down one call stack (`stack.rs`: cache → coalesce →
//! retry/hedge → breaker/bulkhead → balance → transport); the transport (`transport.rs`) is the seam where
//! protocols plug in: HTTP, or gRPC (`grpc.rs`, called with [`Downstream::unary`]). `config.rs` holds the
//! `[downstreams.<name>]` section and its checks.

pub(crate) mod client;
pub mod command;
pub mod config;
mod error;
pub mod grpc;
mod h1pool;
mod request;
mod stack;
mod stream;
mod transport;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::http::header::{HeaderName, HeaderValue};
use axum::http::{Method, StatusCode};
use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

pub use client::{HttpClient, http_client, tls_client};
pub use error::{DownstreamError, DownstreamErrorKind};
pub(crate) use request::{Answer, CallKind, CallRequest};
pub use stream::{LineStream, MAX_LINE_BYTES, MessageStream};

use crate::cache::{DownstreamCache, Store};
use crate::context::RequestContext;
use crate::metrics::Metrics;
use crate::metrics::downstream::{DownstreamMetrics, breaker_report};
use crate::resilience::balance::{Instances, spawn_health_checks};
use crate::resilience::breaker::{Breaker, BreakerPolicy};
use crate::resilience::retry::{RetryBudget, RetryPolicy};
use crate::tls::Http2Mode;
pub use config::{DownstreamConfig, Protocol};
pub use grpc::GrpcMethod;
use grpc::GrpcTransport;
use h1pool::H1Pool;
use transport::{HttpTransport, Transport};

/// One named downstream service. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Downstream {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Configured name, used in logs and errors (never sent to clients).
    name: String,
    /// How calls travel (HTTP or gRPC).
    protocol: Protocol,
    /// Largest accepted response body or gRPC message (also of each message of a stream).
    max_message_bytes: usize,
    /// Layer 6 of the call stack: how calls travel (the pooled HTTP client, answer size cap, media types).
    transport: Transport,
    /// Per-call (per-attempt) timeout.
    timeout: Duration,
    /// The instances (base URLs) and their balancing and health.
    instances: Arc<Instances>,
    /// The downstream's circuit breaker, gating every attempt.
    breaker: Option<Breaker>,
    /// Bulkhead: attempts in flight at most.
    bulkhead: Option<Semaphore>,
    /// Retries and hedging.
    retry: RetryPolicy,
    /// How many retries and hedges the downstream may get.
    budget: RetryBudget,
    /// The response cache policy, calls in flight and counters of this downstream.
    cache: Arc<DownstreamCache>,
    /// Attempts, latencies, retries and hedges (`bff_downstream_*`).
    metrics: DownstreamMetrics,
}

/// Extra request headers of one call.
type ExtraHeaders<'a> = &'a [(HeaderName, HeaderValue)];

/// Characters escaped in a path segment: everything but letters, digits, `-`, `_`, `~`, so `/`, `.`, `%`, `?`
/// and `#` in a parameter can never change the path structure.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'~');

/// Percent-encodes one path segment: everything but ASCII letters, digits, `-`, `_` and `~` is escaped, `.`
/// included, so `../admin` becomes `%2E%2E%2Fadmin` and can never climb out of its segment.
pub fn encode_segment(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

/// Percent-encodes a query component.
pub fn encode_query(value: &str) -> String {
    utf8_percent_encode(value, SEGMENT).to_string()
}

impl Downstream {
    /// A downstream named `name`, configured by `config`, using `client`, with no response store (GETs are
    /// still coalesced). With active health checks configured and a Tokio runtime present, their background
    /// task starts here.
    pub fn new(name: &str, config: &DownstreamConfig, client: HttpClient) -> Self {
        Self::with_store(
            name,
            config,
            client,
            &Arc::new(Store::disabled()),
            &Metrics::default(),
        )
    }

    /// Like [`Downstream::new`], caching GET answers in the gateway's `store` and counting into `metrics`.
    pub fn with_store(
        name: &str,
        config: &DownstreamConfig,
        client: HttpClient,
        store: &Arc<Store>,
        metrics: &Metrics,
    ) -> Self {
        let r = &config.resilience;
        let bases: Vec<String> = std::iter::once(config.url.clone())
            .chain(r.instances.iter().cloned())
            .collect();
        let checks = r.health_check.interval_ms > 0;
        let instances = Arc::new(Instances::new(bases, r.balance, |i| {
            (r.ejection.consecutive_failures > 0 || checks).then(|| {
                Breaker::new(
                    format!("instance {i} of {name}"),
                    BreakerPolicy {
                        consecutive_failures: r.ejection.consecutive_failures,
                        failure_rate: f64::INFINITY,
                        window: Duration::from_secs(10),
                        min_calls: u32::MAX,
                        open_for: Duration::from_millis(r.ejection.eject_ms),
                        half_open_probes: 1,
                    },
                )
            })
        }));
        if checks && instances.all().len() > 1 {
            spawn_health_checks(
                name,
                &instances,
                client.clone(),
                r.health_check.path.clone(),
                Duration::from_millis(r.health_check.interval_ms),
                Duration::from_millis(r.health_check.timeout_ms),
            );
        }
        let b = &r.breaker;
        let breaker = b.enabled.then(|| {
            Breaker::new(
                format!("downstream {name}"),
                BreakerPolicy {
                    consecutive_failures: b.consecutive_failures,
                    failure_rate: b.failure_rate,
                    window: Duration::from_secs(b.window_s),
                    min_calls: b.min_calls,
                    open_for: Duration::from_millis(b.open_ms),
                    half_open_probes: b.half_open_probes,
                },
            )
            .reporting(breaker_report(metrics, name))
        });
        Self {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                protocol: config.protocol,
                max_message_bytes: config.max_response_bytes,
                transport: match config.protocol {
                    Protocol::Http => Transport::Http(HttpTransport {
                        // Plain HTTP/1.1 instances get a lean pool each; HTTP/2-only ones stay on `client`.
                        lean: instances
                            .all()
                            .iter()
                            .map(|instance| {
                                (config.effective_http2() != Http2Mode::Always)
                                    .then(|| {
                                        H1Pool::new(
                                            &instance.base,
                                            Duration::from_millis(config.connect_timeout_ms),
                                        )
                                    })
                                    .flatten()
                            })
                            .collect(),
                        client,
                        max_bytes: config.max_response_bytes,
                        content_types: config
                            .json_content_types
                            .iter()
                            .map(|t| t.to_ascii_lowercase())
                            .collect(),
                    }),
                    Protocol::Grpc => Transport::Grpc(GrpcTransport {
                        client,
                        max_bytes: config.max_response_bytes,
                    }),
                },
                timeout: Duration::from_millis(config.timeout_ms),
                instances,
                breaker,
                bulkhead: (r.max_concurrent > 0).then(|| Semaphore::new(r.max_concurrent)),
                retry: RetryPolicy::from_config(&r.retry),
                budget: RetryBudget::new(r.retry.budget_ratio, r.retry.budget_min_per_s),
                cache: Arc::new(DownstreamCache::new(
                    name,
                    config.cache.clone(),
                    store.clone(),
                    metrics,
                )),
                metrics: DownstreamMetrics::new(metrics, name),
            }),
        }
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// How this downstream is called: [`Protocol::Http`] (the `get_*` / `post_json` / `command` methods) or
    /// [`Protocol::Grpc`] ([`Downstream::unary`]).
    pub fn protocol(&self) -> Protocol {
        self.inner.protocol
    }

    /// Calls the unary gRPC `method` with `request` and decodes its answer, through the whole call stack
    /// (retries on `UNAVAILABLE` within the budget and hedging when `method` is idempotent, breaker,
    /// bulkhead, balancing; never cached), bounded by min(per-call timeout, request deadline), sent as
    /// `grpc-timeout`. Failures map like HTTP ones (see [`grpc`]); on an HTTP downstream, every call fails
    /// as unreachable (a configuration mismatch, logged).
    pub async fn unary<Q, R>(
        &self,
        ctx: &RequestContext,
        method: GrpcMethod,
        request: &Q,
    ) -> Result<R, DownstreamError>
    where
        Q: prost::Message,
        R: prost::Message + Default,
    {
        let body = self
            .unary_raw(ctx, method.path, method.idempotent, request)
            .await?;
        R::decode(body).map_err(|e| {
            tracing::warn!(downstream = %self.inner.name, method = method.path, error = %e, "malformed protobuf message");
            self.err(DownstreamErrorKind::Decode)
        })
    }

    /// Calls the unary gRPC method at `path` (`/package.Service/Method`) with `request` like
    /// [`Downstream::unary`], and returns the answer's message undecoded (for messages known only at run time,
    /// e.g. the declarative gRPC routes).
    pub(crate) async fn unary_raw(
        &self,
        ctx: &RequestContext,
        path: &str,
        idempotent: bool,
        request: &impl prost::Message,
    ) -> Result<bytes::Bytes, DownstreamError> {
        if self.inner.protocol != Protocol::Grpc {
            tracing::error!(downstream = %self.inner.name, method = path, "gRPC call to a downstream not configured with protocol = \"grpc\"");
            return Err(self.err(DownstreamErrorKind::Connect));
        }
        let req = CallRequest::rpc(ctx, path, grpc::frame(request), idempotent);
        Ok(Box::pin(self.send(req)).await?.body)
    }

    /// GETs `path_and_query` (already encoded; build it with [`encode_segment`]) and decodes the JSON body.
    /// The path may be an owned `String` (e.g. `format!(..)`), so the future borrows nothing temporary.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        ctx: &RequestContext,
        path_and_query: impl AsRef<str>,
    ) -> Result<T, DownstreamError> {
        let body = self.get_bytes(ctx, path_and_query.as_ref(), &[]).await?;
        self.decode(&body)
    }

    /// Batch lookup: GETs `{prefix}{id1},{id2},...` (each id query-encoded) in calls of at most `per_call`
    /// ids, run in parallel (one call in the normal case), and returns the decoded answers. No call at all for
    /// no ids. E.g. `catalog.get_batch::<ProductBatch>(&ctx, "/products?ids=", &ids, 100)`.
    pub async fn get_batch<T: DeserializeOwned>(
        &self,
        ctx: &RequestContext,
        prefix: &str,
        ids: &[String],
        per_call: usize,
    ) -> Result<Vec<T>, DownstreamError> {
        let calls = ids.chunks(per_call.max(1)).map(|chunk| {
            let list: Vec<String> = chunk.iter().map(|id| encode_query(id)).collect();
            self.get_json::<T>(ctx, format!("{prefix}{}", list.join(",")))
        });
        futures::future::try_join_all(calls).await
    }

    /// GETs `path_and_query` with `extra_headers` and returns the raw body of a 2xx answer, through the
    /// whole call stack (response cache and coalescing first, see [`crate::cache`]).
    pub async fn get_bytes(
        &self,
        ctx: &RequestContext,
        path_and_query: &str,
        extra_headers: ExtraHeaders<'_>,
    ) -> Result<Bytes, DownstreamError> {
        Ok(self
            .read(ctx, path_and_query, extra_headers, false)
            .await?
            .body)
    }

    /// [`Self::get_bytes`], with the rest of the answer, the downstream's `ETag` included (for a forwarding
    /// route).
    pub(crate) fn get_answer(
        &self,
        ctx: &RequestContext,
        path_and_query: &str,
        extra_headers: ExtraHeaders<'_>,
    ) -> Pin<Box<dyn Future<Output = Result<Answer, DownstreamError>> + Send + '_>> {
        self.read(ctx, path_and_query, extra_headers, true)
    }

    /// A GET through the whole call stack, keeping the downstream's `ETag` when `keep_tag`. Not an
    /// `async fn`: the boxed call is returned as it is, so callers await it without a second state machine
    /// around it (measured: the nested one cost ~350 instructions per aggregation).
    fn read(
        &self,
        ctx: &RequestContext,
        path_and_query: &str,
        extra_headers: ExtraHeaders<'_>,
        keep_tag: bool,
    ) -> Pin<Box<dyn Future<Output = Result<Answer, DownstreamError>> + Send + '_>> {
        let mut req = CallRequest::get(ctx, path_and_query, extra_headers, CallKind::Read);
        req.keep_tag = keep_tag;
        // Boxed: the stack's state machines are several KiB; kept inline they would be copied into every
        // composing future (measured: memcpy was 40% of a pass-through's instructions).
        Box::pin(self.send(req))
    }

    /// GETs `path_and_query` and decodes the JSON body, bypassing the response cache and coalescing (for
    /// callers that keep their own copy and must see the downstream's current answer, e.g. the JWKS).
    pub async fn get_json_uncached<T: DeserializeOwned>(
        &self,
        ctx: &RequestContext,
        path_and_query: &str,
    ) -> Result<T, DownstreamError> {
        let answer = self.get_uncached(ctx, path_and_query).await?;
        self.decode(&answer.body)
    }

    /// One GET, not cached.
    pub(crate) async fn get_uncached(
        &self,
        ctx: &RequestContext,
        path_and_query: &str,
    ) -> Result<Answer, DownstreamError> {
        let req = CallRequest::get(ctx, path_and_query, &[], CallKind::Uncached);
        Box::pin(self.send(req)).await
    }

    /// The response cache of this downstream (for the batcher).
    pub(crate) fn cache(&self) -> &Arc<DownstreamCache> {
        &self.inner.cache
    }

    /// POSTs `body` as JSON to `path_and_query` and decodes the JSON answer. Never retried nor hedged (a POST
    /// is not idempotent); the breaker, bulkhead, balancing and deadline apply as to every call.
    pub async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        ctx: &RequestContext,
        path_and_query: impl AsRef<str>,
        body: &B,
    ) -> Result<T, DownstreamError> {
        let body = serde_json::to_vec(body).map_err(|e| {
            tracing::error!(downstream = %self.inner.name, error = %e, "request body not serialisable");
            self.err(DownstreamErrorKind::Decode)
        })?;
        let req = CallRequest::once(
            ctx,
            Method::POST,
            path_and_query.as_ref(),
            Some(Bytes::from(body)),
            &[],
        );
        let answer = Box::pin(self.send(req)).await?;
        match answer.status {
            StatusCode::NOT_FOUND => Err(self.err(DownstreamErrorKind::NotFound)),
            s if !s.is_success() => Err(self.err(DownstreamErrorKind::Status(s.as_u16()))),
            _ => self.decode(&answer.body),
        }
    }

    fn decode<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, DownstreamError> {
        serde_json::from_slice(body).map_err(|e| {
            tracing::warn!(downstream = %self.inner.name, error = %e, "malformed JSON");
            self.err(DownstreamErrorKind::Decode)
        })
    }

    /// Whether at least one instance answers at all (any HTTP status) on `/healthz` within `timeout`.
    pub async fn is_reachable(&self, timeout: Duration) -> bool {
        let probes = self.inner.instances.all().iter().map(|instance| {
            let url = format!("{}/healthz", instance.base);
            async move {
                matches!(
                    tokio::time::timeout(
                        timeout,
                        client::get_status(self.inner.transport.http_client(), &url),
                    )
                    .await,
                    Ok(Some(_))
                )
            }
        });
        futures::future::join_all(probes)
            .await
            .into_iter()
            .any(|ok| ok)
    }

    fn err(&self, kind: DownstreamErrorKind) -> DownstreamError {
        DownstreamError::new(self.inner.name.clone(), kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Path parameters cannot climb out of their segment.
    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("42"), "42");
        assert_eq!(encode_segment("../admin"), "%2E%2E%2Fadmin");
        assert_eq!(encode_segment(".."), "%2E%2E");
        assert_eq!(encode_segment("a?b#c%2F"), "a%3Fb%23c%252F");
    }
}

#[cfg(test)]
mod future_size_tests {
    use super::*;
    use tokio::time::Instant;

    /// The futures every request composes stay small: large state machines are boxed behind them, so moving a
    /// composed future (into the edge, into `try_join!`) never copies kilobytes.
    #[test]
    fn hot_path_futures_are_small() {
        let client = http_client(Duration::from_millis(500));
        let d = Downstream::new("x", &DownstreamConfig::at("http://127.0.0.1:9"), client);
        let ctx = RequestContext::new(
            "r".into(),
            crate::trace::TraceContext::from_headers(&Default::default()),
            None,
            Instant::now(),
        );
        let bytes = d.get_bytes(&ctx, "/x", &[]);
        assert!(
            std::mem::size_of_val(&bytes) <= 512,
            "get_bytes: {}",
            std::mem::size_of_val(&bytes)
        );
        let json = d.get_json::<serde_json::Value>(&ctx, "/x");
        assert!(
            std::mem::size_of_val(&json) <= 512,
            "get_json: {}",
            std::mem::size_of_val(&json)
        );
        // The call stack's own future, copied whole into its box once per call: hedging's two attempts
        // side by side (~6 KiB) are boxed behind it.
        let req = CallRequest::get(&ctx, "/x", &[], CallKind::Read);
        let send = d.send(req);
        assert!(
            std::mem::size_of_val(&send) <= 2048,
            "send: {}",
            std::mem::size_of_val(&send)
        );
        let verifier =
            crate::auth::JwtVerifier::new(crate::config::JwtConfig::default(), d.clone());
        let verify = verifier.verify("x");
        assert!(
            std::mem::size_of_val(&verify) <= 512,
            "verify: {}",
            std::mem::size_of_val(&verify)
        );
    }
}
