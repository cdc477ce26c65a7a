//! The per-request context every handler and downstream call sees: request id, trace context, identity,
//! the deadline of the request's time budget, the list of optional parts that failed, and the cache directives
//! of the parts (merged, strictest wins, into the response's `Cache-Control` by the edge).

use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::HeaderValue;
use axum::http::request::Parts;
use tokio::task::futures::TaskLocalFuture;
use tokio::time::Instant;

use crate::auth::{Identity, IdentityHeaders, NO_IDENTITY_HEADERS, Verified};
use crate::cache::CachePolicy;
use crate::error::BffError;
use crate::metrics::RouteMetrics;
use crate::otel::{PartGuard, PartSpan, RequestSpans};
use crate::streams::screen::Pass;
use crate::trace::{RequestId, TraceContext};

tokio::task_local! {
    static CURRENT_REQUEST_ID: RequestId;
    static CURRENT_PART: (&'static str, Option<PartGuardId>);
}

/// The trace span of a running part: its trace and its span id.
pub(crate) type PartGuardId = (u128, u64);

/// Runs `fut` as the composed part `part` (whose trace span is `span`, when recorded), so that what happens
/// inside it (a stale cache entry served by the downstream client, a downstream attempt's span) can be
/// attributed to the part. The task-local's own future, not an `async fn` around it: one state machine fewer,
/// and `fut` moved once less.
pub(crate) fn in_part<F: Future>(
    part: &'static str,
    span: Option<PartGuardId>,
    fut: F,
) -> TaskLocalFuture<(&'static str, Option<PartGuardId>), F> {
    CURRENT_PART.scope((part, span), fut)
}

/// The composed part being computed on this task, if any.
pub(crate) fn current_part() -> Option<&'static str> {
    CURRENT_PART.try_with(|p| p.0).ok()
}

/// The span of the composed part being computed on this task, if it belongs to the trace `trace_id` (a
/// shared call, coalesced or batched, may be polled by another request's task: its part is not a parent).
pub(crate) fn current_part_span(trace_id: u128) -> Option<u64> {
    CURRENT_PART
        .try_with(|p| p.1)
        .ok()
        .flatten()
        .and_then(|(trace, span)| (trace == trace_id).then_some(span))
}

/// Runs `fut` with `request_id` as the id that error bodies report (like [`in_part`], the task-local's own
/// future).
pub(crate) fn with_request_id<F: Future>(
    request_id: RequestId,
    fut: F,
) -> TaskLocalFuture<RequestId, F> {
    CURRENT_REQUEST_ID.scope(request_id, fut)
}

/// The id of the request being served on this task, if any.
pub(crate) fn current_request_id() -> Option<String> {
    CURRENT_REQUEST_ID
        .try_with(|id| id.as_str().to_owned())
        .ok()
}

/// Cheap to clone; created by the edge for every request and put into the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestContext {
    inner: Arc<Inner>,
    /// The pass of a streamed screen this context runs (`None` for every ordinary request).
    pass: Option<Arc<Pass>>,
}

#[derive(Debug)]
struct Inner {
    /// Echoed to the client and sent to every downstream, to correlate logs.
    request_id: RequestId,
    /// W3C trace context of this hop.
    trace: TraceContext,
    /// `trace` as the `traceparent` value naming this hop, rendered once: echoed to the client and sent to
    /// every downstream that is not given an attempt span of its own (a clone shares its bytes).
    traceparent: HeaderValue,
    /// The verified caller, when the route is authenticated, with its downstream headers rendered once (when
    /// it was verified) and reused by every call of the request.
    caller: Option<Arc<Verified>>,
    /// When the request's time budget is spent.
    deadline: Instant,
    /// Optional parts that failed, in order of failure; rendered as the `bff-partial` header.
    partial: Mutex<Vec<&'static str>>,
    /// Parts served from a fallback, with its source (`stale`, `default`); rendered as `bff-degraded`.
    degraded: Mutex<Vec<(&'static str, &'static str)>>,
    /// The cache directives of the parts so far, merged (strictest wins).
    cache: Mutex<CachePolicy>,
    /// The route the request matched, with its metric series (`None` outside the edge).
    route: Option<Arc<RouteMetrics>>,
    /// Every composed part that finished: name, whether it answered, how long it took.
    parts: Mutex<Vec<PartRecord>>,
    /// The trace recording of this request, when it is sampled and export is on.
    spans: Option<RequestSpans>,
}

/// One finished composed part.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartRecord {
    /// The part's name.
    pub name: &'static str,
    /// Whether its downstream work answered (before any fallback).
    pub ok: bool,
    /// How long it ran.
    pub duration: std::time::Duration,
    /// Its trace span, when the request is recorded.
    pub span: Option<PartSpan>,
}

impl RequestContext {
    /// A context for one request (a `request_id` that is no valid header value is replaced by a new id).
    pub fn new(
        request_id: String,
        trace: TraceContext,
        identity: Option<Identity>,
        deadline: Instant,
    ) -> Self {
        Self::verified(
            request_id.into(),
            trace,
            identity.map(Verified::new),
            deadline,
        )
    }

    /// A context for one request of the verified `caller` (its headers already rendered).
    pub(crate) fn verified(
        request_id: RequestId,
        trace: TraceContext,
        caller: Option<Arc<Verified>>,
        deadline: Instant,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                request_id,
                traceparent: trace.header_value(),
                trace,
                caller,
                deadline,
                partial: Mutex::new(Vec::new()),
                degraded: Mutex::new(Vec::new()),
                cache: Mutex::new(CachePolicy::default()),
                route: None,
                parts: Mutex::new(Vec::new()),
                spans: None,
            }),
            pass: None,
        }
    }

    /// A context for work on behalf of this request that outlives it or gathers several requests (a background
    /// refresh, a batch call): same request id, trace and identity (headers not rendered again), its own
    /// `deadline`, no parts, no route, no trace recording.
    pub(crate) fn detached(&self, deadline: Instant) -> Self {
        Self::verified(
            self.inner.request_id.clone(),
            self.inner.trace.clone(),
            self.inner.caller.clone(),
            deadline,
        )
    }

    /// The same request run as the pass `pass` of a streamed screen (see [`crate::streams::screen`]).
    pub(crate) fn in_pass(&self, pass: Pass) -> Self {
        Self {
            inner: self.inner.clone(),
            pass: Some(Arc::new(pass)),
        }
    }

    /// The pass of a streamed screen this context runs, if any.
    pub(crate) fn pass(&self) -> Option<&Pass> {
        self.pass.as_deref()
    }

    /// The context of a request that matched the route of `route` (its template and metric series).
    pub(crate) fn for_route(mut self, route: &Arc<RouteMetrics>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.route = Some(route.clone());
        }
        self
    }

    /// The context of a request recorded by `spans`.
    pub(crate) fn with_spans(mut self, spans: Option<RequestSpans>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.spans = spans;
        }
        self
    }

    /// The trace recording of this request, when sampled.
    pub(crate) fn spans(&self) -> Option<&RequestSpans> {
        self.inner.spans.as_ref()
    }

    /// Opens the trace span of the part `name`, when the request is recorded.
    pub(crate) fn part_span(&self, name: &'static str) -> Option<PartGuard> {
        self.inner.spans.as_ref().map(|s| s.part(name))
    }

    /// The route template the request matched (empty outside the edge).
    pub fn route(&self) -> &str {
        self.inner.route.as_deref().map_or("", RouteMetrics::route)
    }

    /// Records that the part `name` finished after `duration`, answered (`ok`) or not, closing its span.
    pub(crate) fn record_part(
        &self,
        name: &'static str,
        ok: bool,
        duration: std::time::Duration,
        span: Option<PartGuard>,
    ) {
        let span = span.map(PartGuard::finish);
        if let Ok(mut parts) = self.inner.parts.lock() {
            parts.push(PartRecord {
                name,
                ok,
                duration,
                span,
            });
        }
    }

    /// The parts finished so far, in order of completion.
    pub fn part_records(&self) -> Vec<PartRecord> {
        self.inner
            .parts
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default()
    }

    /// The request id.
    pub fn request_id(&self) -> &str {
        self.inner.request_id.as_str()
    }

    /// The request id as the header value it is sent as (a clone shares its bytes).
    pub(crate) fn request_id_value(&self) -> &RequestId {
        &self.inner.request_id
    }

    /// The trace context of this hop.
    pub fn trace(&self) -> &TraceContext {
        &self.inner.trace
    }

    /// The `traceparent` header value naming this hop ([`TraceContext::header_value`], rendered once).
    pub fn traceparent(&self) -> &HeaderValue {
        &self.inner.traceparent
    }

    /// The verified caller, if the route is authenticated.
    pub fn identity(&self) -> Option<&Identity> {
        self.inner.caller.as_deref().map(Verified::identity)
    }

    /// The verified identity's downstream headers and scope (empty without identity), rendered once.
    pub(crate) fn identity_headers(&self) -> &IdentityHeaders {
        self.inner
            .caller
            .as_deref()
            .map_or(&NO_IDENTITY_HEADERS, Verified::headers)
    }

    /// The verified caller, or 401.
    pub fn require_identity(&self) -> Result<&Identity, BffError> {
        self.identity().ok_or(BffError::Unauthenticated {
            reason: "credentials required",
        })
    }

    /// When the request's time budget is spent.
    pub fn deadline(&self) -> Instant {
        self.inner.deadline
    }

    /// Records that an optional part failed.
    pub fn mark_partial(&self, part: &'static str) {
        if let Ok(mut parts) = self.inner.partial.lock()
            && !parts.contains(&part)
        {
            parts.push(part);
        }
    }

    /// The optional parts that failed so far.
    pub fn partial_parts(&self) -> Vec<&'static str> {
        self.inner
            .partial
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default()
    }
}

impl RequestContext {
    /// Records that `part` was served from a fallback (`source`: `stale` or `default`).
    pub fn mark_degraded(&self, part: &'static str, source: &'static str) {
        if let Ok(mut parts) = self.inner.degraded.lock()
            && !parts.iter().any(|(p, _)| *p == part)
        {
            parts.push((part, source));
        }
    }

    /// The parts served from a fallback so far, with their sources.
    pub fn degraded_parts(&self) -> Vec<(&'static str, &'static str)> {
        self.inner
            .degraded
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default()
    }
}

impl RequestContext {
    /// Records the cache directives of one part of the response (the downstream client does this for every
    /// GET it answers); the edge renders the merge as the response's `Cache-Control`.
    pub fn record_cache(&self, policy: CachePolicy) {
        if let Ok(mut merged) = self.inner.cache.lock() {
            *merged = merged.merge(policy);
        }
    }

    /// The merged cache directives of the parts so far (strictest wins).
    pub fn cache_policy(&self) -> CachePolicy {
        self.inner.cache.lock().map(|p| *p).unwrap_or_default()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = BffError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<RequestContext>()
            .cloned()
            .ok_or_else(|| {
                tracing::error!("RequestContext missing: the router was not wrapped by the edge");
                BffError::Internal
            })
    }
}
