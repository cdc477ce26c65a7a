//! Clients of the downstream services. One [`Downstream`] per named service carries its whole call policy,
//! so handlers only compose: per-call timeout bounded by the request deadline (and announced to the
//! downstream in `x-bff-deadline-ms`), bulkhead, circuit breaker, retries of idempotent calls within a
//! budget, optional hedging, balancing over several instances with passive and active health (see
//! [`crate::resilience`]); no redirects, response size cap; request id, trace context and the verified
//! identity propagated; GETs through the response cache with coalescing and stale serving (see
//! [`crate::cache`]), each answer's cache directives recorded on the request context.

pub(crate) mod client;
pub mod command;
mod error;

use std::sync::Arc;
use std::time::Duration;

use axum::http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use axum::http::{Method, Request, StatusCode};
use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use http_body_util::{BodyExt, Full};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::Instrument;

pub use client::{HttpClient, http_client, tls_client};
pub use error::{DownstreamError, DownstreamErrorKind};

use crate::cache::{Answer, DownstreamCache, Keys, Store};
use crate::config::DownstreamConfig;
use crate::context::RequestContext;
use crate::metrics::downstream::{DownstreamMetrics, breaker_report};
use crate::metrics::{DownstreamOutcome, Metrics};
use crate::otel::{Attempt, AttemptGuard};
use crate::resilience::DEADLINE_HEADER;
use crate::resilience::balance::{Instance, Instances, spawn_health_checks};
use crate::resilience::breaker::{Breaker, BreakerPolicy, Outcome};
use crate::resilience::retry::{RetryBudget, RetryPolicy, is_retryable};
use crate::trace::{REQUEST_ID, TRACEPARENT};

/// One named downstream service. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Downstream {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Configured name, used in logs and errors (never sent to clients).
    name: String,
    /// The pooled client.
    client: HttpClient,
    /// Per-call (per-attempt) timeout.
    timeout: Duration,
    /// Response body cap in bytes.
    max_bytes: usize,
    /// Accepted media types of a successful answer (lower case); empty = any.
    content_types: Vec<String>,
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
                client,
                timeout: Duration::from_millis(config.timeout_ms),
                max_bytes: config.max_response_bytes,
                content_types: config
                    .json_content_types
                    .iter()
                    .map(|t| t.to_ascii_lowercase())
                    .collect(),
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
    /// response cache (see [`crate::cache`]).
    pub async fn get_bytes(
        &self,
        ctx: &RequestContext,
        path_and_query: &str,
        extra_headers: ExtraHeaders<'_>,
    ) -> Result<Bytes, DownstreamError> {
        let cache = &self.inner.cache;
        if cache.bypassed() {
            // Neither stored nor coalesced: no key, no flight, no closure; only the answer's client policy.
            let answer =
                Box::pin(self.call(ctx, Method::GET, path_and_query, None, extra_headers)).await?;
            let per_caller = !cache.config.shared && ctx.identity().is_some();
            ctx.record_cache(cache.policy_of(&answer, path_and_query, per_caller));
            return Ok(answer.body);
        }
        let keys = Keys::new(
            &self.inner.name,
            cache.config.shared,
            ctx,
            path_and_query,
            extra_headers,
        );
        let this = self.clone();
        let path: Arc<str> = Arc::from(path_and_query);
        let extra: Arc<[(HeaderName, HeaderValue)]> = Arc::from(extra_headers);
        let fetch = move |ctx: RequestContext| {
            let (this, path, extra) = (this.clone(), path.clone(), extra.clone());
            async move { this.call(&ctx, Method::GET, &path, None, &extra).await }.boxed()
        };
        // Boxed: the cache, coalescing and call state machines are several KiB; kept inline they would be
        // copied into every composing future (measured: memcpy was 40% of a pass-through's instructions).
        Box::pin(cache.get(ctx, keys, fetch)).await
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
        Box::pin(self.call(ctx, Method::GET, path_and_query, None, &[])).await
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
        let answer = Box::pin(self.call(
            ctx,
            Method::POST,
            path_and_query.as_ref(),
            Some(Bytes::from(body)),
            &[],
        ))
        .await?;
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

    /// One logical call: attempts (hedged when configured) until success, a failure that is not retried, the
    /// retry limit, the retry budget, or the request deadline.
    async fn call(
        &self,
        ctx: &RequestContext,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
        extra: ExtraHeaders<'_>,
    ) -> Result<Answer, DownstreamError> {
        let inner = &*self.inner;
        let started = Instant::now();
        let deadline = ctx.deadline();
        let span = tracing::info_span!("downstream", downstream = %inner.name, method = %method, path = %path_and_query);
        let result = async {
            let idempotent = method == Method::GET || method == Method::HEAD;
            if idempotent {
                inner.budget.record_call();
            }
            let mut retries = 0;
            let mut avoid = None;
            loop {
                // No attempt starts once the request's budget is spent.
                if Instant::now() >= deadline {
                    return Err(self.err(DownstreamErrorKind::Deadline));
                }
                let number = retries + 1;
                let first = Attempt { number, hedge: false };
                let attempt = self.attempt(ctx, &method, path_and_query, body.as_ref(), extra, avoid, first);
                let (result, instance) = match inner.retry.hedge_after {
                    Some(delay) if idempotent => {
                        let second = Attempt { number, hedge: true };
                        let hedge = self.attempt(ctx, &method, path_and_query, body.as_ref(), extra, avoid, second);
                        self.hedged(attempt, hedge, delay, deadline).await
                    }
                    _ => attempt.await,
                };
                let error = match result {
                    Ok(body) => return Ok(body),
                    Err(e) => e,
                };
                if !is_retryable(&method, error.kind) || retries >= inner.retry.max_retries {
                    return Err(error);
                }
                retries += 1;
                let backoff = inner.retry.backoff(retries);
                if Instant::now() + backoff >= deadline {
                    tracing::debug!(error = %error, "no time left to retry");
                    return Err(error);
                }
                if !inner.budget.try_withdraw() {
                    tracing::debug!(error = %error, "retry budget exhausted; not retried");
                    return Err(error);
                }
                inner.metrics.retry();
                tracing::debug!(error = %error, retry = retries, backoff_ms = backoff.as_millis() as u64, "retrying");
                tokio::time::sleep(backoff).await;
                avoid = instance;
            }
        }
        .instrument(span)
        .await;
        result.inspect_err(|e| {
            let elapsed_ms = started.elapsed().as_millis() as u64;
            if matches!(e.kind, DownstreamErrorKind::CircuitOpen { .. }) {
                tracing::debug!(error = %e, elapsed_ms, "downstream call failed fast");
            } else {
                tracing::warn!(error = %e, elapsed_ms, "downstream call failed");
            }
        })
    }

    /// Runs `first`; if it has not finished after `delay`, starts `second` too (within the retry budget) and
    /// takes the first success (or the last failure).
    async fn hedged<F>(
        &self,
        first: F,
        second: F,
        delay: Duration,
        deadline: Instant,
    ) -> (Result<Answer, DownstreamError>, Option<usize>)
    where
        F: Future<Output = (Result<Answer, DownstreamError>, Option<usize>)>,
    {
        let mut first = std::pin::pin!(first);
        tokio::select! {
            result = &mut first => return result,
            () = tokio::time::sleep(delay) => {}
        }
        if Instant::now() >= deadline || !self.inner.budget.try_withdraw() {
            return first.await;
        }
        self.inner.metrics.hedge();
        tracing::debug!(
            delay_ms = delay.as_millis() as u64,
            "hedging: second attempt"
        );
        let second = std::pin::pin!(second);
        match futures::future::select(first, second).await {
            futures::future::Either::Left((result, other))
            | futures::future::Either::Right((result, other)) => {
                if result.0.is_ok() {
                    result
                } else {
                    other.await
                }
            }
        }
    }

    /// One attempt (recorded as a client span when the request is traced): through the breaker and the
    /// bulkhead to one instance, bounded by the per-call timeout and the request deadline. Returns the
    /// instance tried, if any.
    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        ctx: &RequestContext,
        method: &Method,
        path_and_query: &str,
        body: Option<&Bytes>,
        extra: ExtraHeaders<'_>,
        avoid: Option<usize>,
        which: Attempt,
    ) -> (Result<Answer, DownstreamError>, Option<usize>) {
        let span = ctx
            .spans()
            .map(|s| s.attempt(&self.inner.name, method.as_str(), which));
        let (result, instance) = self
            .attempt_untraced(
                ctx,
                method,
                path_and_query,
                body,
                extra,
                avoid,
                span.as_ref(),
            )
            .await;
        if let Some(span) = span {
            let (status, error) = match &result {
                Ok(answer) => (Some(answer.status.as_u16()), None),
                Err(e) => match e.kind {
                    DownstreamErrorKind::Status(s) => (Some(s), Some(s.to_string())),
                    DownstreamErrorKind::NotFound => (Some(404), Some("404".to_owned())),
                    kind => (
                        None,
                        Some(DownstreamOutcome::of(Err(kind)).as_str().to_owned()),
                    ),
                },
            };
            span.finish(status, error);
        }
        (result, instance)
    }

    /// [`Self::attempt`] without its span; `span` names the attempt in its `traceparent`.
    #[allow(clippy::too_many_arguments)]
    async fn attempt_untraced(
        &self,
        ctx: &RequestContext,
        method: &Method,
        path_and_query: &str,
        body: Option<&Bytes>,
        extra: ExtraHeaders<'_>,
        avoid: Option<usize>,
        span: Option<&AttemptGuard>,
    ) -> (Result<Answer, DownstreamError>, Option<usize>) {
        let inner = &*self.inner;
        let permit = match inner.breaker.as_ref().map(Breaker::try_acquire) {
            None => None,
            Some(Ok(permit)) => Some(permit),
            Some(Err(wait)) => {
                let retry_after_ms = wait.as_millis() as u64;
                inner
                    .metrics
                    .attempt(DownstreamOutcome::BreakerOpen, Duration::ZERO);
                return (
                    Err(self.err(DownstreamErrorKind::CircuitOpen { retry_after_ms })),
                    None,
                );
            }
        };
        let _slot = match inner.bulkhead.as_ref().map(Semaphore::try_acquire) {
            None => None,
            Some(Ok(slot)) => Some(slot),
            Some(Err(_)) => {
                inner
                    .metrics
                    .attempt(DownstreamOutcome::BulkheadFull, Duration::ZERO);
                return (Err(self.err(DownstreamErrorKind::Saturated)), None);
            }
        };
        let i = inner.instances.pick(avoid);
        let _in_flight = inner.instances.start(i);
        let deadline = ctx.deadline();
        let sent = Instant::now();
        let call_deadline = (sent + inner.timeout).min(deadline);
        let instance = inner.instances.get(i);
        let fetch = self.fetch(
            ctx,
            method,
            instance,
            path_and_query,
            body,
            extra,
            call_deadline,
            span.map(AttemptGuard::id),
        );
        let result = match tokio::time::timeout_at(call_deadline, fetch).await {
            Ok(r) => r,
            Err(_) if call_deadline == deadline => Err(self.err(DownstreamErrorKind::Deadline)),
            Err(_) => Err(self.err(DownstreamErrorKind::Timeout)),
        };
        inner.metrics.attempt(
            DownstreamOutcome::of(result.as_ref().map(|_| ()).map_err(|e| e.kind)),
            sent.elapsed(),
        );
        let outcome = outcome_of(&result);
        if let Some(permit) = permit {
            permit.record(outcome);
        }
        inner.instances.observe(i, outcome);
        (result, Some(i))
    }

    #[allow(clippy::too_many_arguments)]
    async fn fetch(
        &self,
        ctx: &RequestContext,
        method: &Method,
        instance: &Instance,
        path_and_query: &str,
        body: Option<&Bytes>,
        extra_headers: ExtraHeaders<'_>,
        call_deadline: Instant,
        span: Option<u64>,
    ) -> Result<Answer, DownstreamError> {
        let inner = &*self.inner;
        let base = &instance.base;
        let mut url = String::with_capacity(base.len() + path_and_query.len());
        url.push_str(base);
        url.push_str(path_and_query);
        let remaining_ms = call_deadline
            .saturating_duration_since(Instant::now())
            .as_millis()
            .max(1) as u64;
        let mut request = Request::builder()
            .method(method.clone())
            .uri(url)
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .header(REQUEST_ID, ctx.request_id())
            .header(
                TRACEPARENT,
                match span {
                    Some(id) => ctx.trace().header_value_for(id),
                    None => ctx.trace().header_value(),
                },
            )
            .header(DEADLINE_HEADER, HeaderValue::from(remaining_ms));
        if let Some(host) = &instance.host {
            request = request.header(HOST, host.clone());
        }
        if let Some(identity) = ctx.identity() {
            for (name, value) in identity.downstream_headers() {
                request = request.header(name, value);
            }
        }
        for (name, value) in extra_headers {
            request = request.header(name.clone(), value.clone());
        }
        if body.is_some() && !extra_headers.iter().any(|(name, _)| name == CONTENT_TYPE) {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let request = request
            .body(Full::new(body.cloned().unwrap_or_default()))
            .map_err(|e| {
                // Only a malformed base URL from config (validated) or header could get here.
                tracing::warn!(error = %e, "downstream request could not be built");
                self.err(DownstreamErrorKind::Connect)
            })?;
        let response = inner.client.request(request).await.map_err(|e| {
            // The whole cause chain (e.g. `invalid peer certificate: Expired`) goes to the log, never to
            // the client.
            let cause = error_chain(&e);
            if e.is_connect() {
                tracing::warn!(downstream = %inner.name, cause = %cause, "connection failed");
                self.err(DownstreamErrorKind::Connect)
            } else {
                tracing::warn!(downstream = %inner.name, cause = %cause, "answer broke off");
                // Connected, but the answer broke off (reset, closed, not HTTP).
                self.err(DownstreamErrorKind::Body)
            }
        })?;
        let status = response.status();
        // A command's 4xx is its answer (a refusal the handler maps for the client), not a failure.
        let refusal = status.is_client_error() && !method.is_safe();
        if status == StatusCode::NOT_FOUND && !refusal {
            return Err(self.err(DownstreamErrorKind::NotFound));
        }
        if !status.is_success() && !refusal {
            return Err(self.err(DownstreamErrorKind::Status(status.as_u16())));
        }
        if !inner.content_types.is_empty()
            && status != StatusCode::NO_CONTENT
            && !media_type_allowed(response.headers().get(CONTENT_TYPE), &inner.content_types)
        {
            tracing::warn!(
                downstream = %inner.name,
                content_type = ?response.headers().get(CONTENT_TYPE),
                "answer of an unexpected content type"
            );
            return Err(self.err(DownstreamErrorKind::Decode));
        }
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > inner.max_bytes as u64) {
            return Err(self.err(DownstreamErrorKind::TooLarge));
        }
        let cache_control = response
            .headers()
            .get(axum::http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // The usual small answer arrives as one frame and is returned without a copy.
        let mut incoming = response.into_body();
        let mut first: Option<Bytes> = None;
        let mut rest = BytesMut::new();
        let mut total = 0usize;
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(|e| {
                tracing::debug!(error = %e, "body read failed");
                self.err(DownstreamErrorKind::Body)
            })?;
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            total += chunk.len();
            if total > inner.max_bytes {
                return Err(self.err(DownstreamErrorKind::TooLarge));
            }
            match &first {
                None if rest.is_empty() => first = Some(chunk),
                _ => {
                    if let Some(f) = first.take() {
                        rest.extend_from_slice(&f);
                    }
                    rest.extend_from_slice(&chunk);
                }
            }
        }
        let body = match first {
            Some(only) => only,
            None => rest.freeze(),
        };
        tracing::debug!(
            status = status.as_u16(),
            bytes = body.len(),
            "downstream answered"
        );
        Ok(Answer {
            status,
            body,
            cache_control,
        })
    }

    /// Whether at least one instance answers at all (any HTTP status) on `/healthz` within `timeout`.
    pub async fn is_reachable(&self, timeout: Duration) -> bool {
        let probes = self.inner.instances.all().iter().map(|instance| {
            let url = format!("{}/healthz", instance.base);
            async move {
                matches!(
                    tokio::time::timeout(timeout, client::get_status(&self.inner.client, &url))
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

/// `error` and its sources, `: `-separated.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// What an attempt's result says about the downstream's health: it failed (unreachable, reset, timed out,
/// 5xx), it answered (2xx, 404 and other 4xx, an oversized body), or nothing (the request's own budget ran
/// out, or the attempt never left).
fn outcome_of(result: &Result<Answer, DownstreamError>) -> Outcome {
    use DownstreamErrorKind as K;
    match result {
        Ok(_) => Outcome::Success,
        Err(e) => match e.kind {
            K::Connect | K::Timeout | K::Body => Outcome::Failure,
            K::Status(s) if s >= 500 => Outcome::Failure,
            K::Status(_) | K::NotFound | K::Decode | K::TooLarge => Outcome::Success,
            K::Deadline | K::CircuitOpen { .. } | K::Saturated => Outcome::Ignore,
        },
    }
}

/// Whether `value` (a `Content-Type`) names one of `allowed` (lower-case media types), parameters ignored.
fn media_type_allowed(value: Option<&HeaderValue>, allowed: &[String]) -> bool {
    let Some(essence) = value
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim())
    else {
        return false;
    };
    allowed.iter().any(|a| a.eq_ignore_ascii_case(essence))
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
