//! The one value a downstream call is ([`CallRequest`]) and what it yields ([`Answer`]): every layer of the
//! call stack (see `stack.rs`) reads what it needs from it instead of taking parameters threaded by hand.

use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use bytes::Bytes;
use tokio::time::Instant;

use crate::auth::IdentityHeaders;
use crate::context::RequestContext;
use crate::trace::TraceContext;

/// Which layers of the call stack a call passes. The unsafe ones are skipped explicitly, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallKind {
    /// A read (GET): response cache and coalescing (as configured), retries and hedging.
    Read,
    /// A read that skips the response cache and coalescing: for callers that keep their own copy (the JWKS,
    /// the batcher, which caches item by item). Retries and hedging apply.
    Uncached,
    /// An unsafe call (a command, a POST): exactly one attempt; no cache, no coalescing, no retry, no hedge.
    Once,
}

/// One downstream call: the request it belongs to (request id, trace parent, verified identity headers,
/// deadline, trace recording), the method, the path and query, extra headers, the body and which layers
/// apply. Cloned only when a call outlives its caller (a coalesced flight, a background refresh).
#[derive(Debug, Clone)]
pub(crate) struct CallRequest {
    /// The request on whose behalf the call is made.
    ctx: RequestContext,
    /// The method.
    pub(crate) method: Method,
    /// Path and query, already encoded.
    pub(crate) path_and_query: Arc<str>,
    /// Extra headers (e.g. a route's forwarded headers, a command's `Idempotency-Key`).
    pub(crate) extra: Vec<(HeaderName, HeaderValue)>,
    /// A JSON body, if any.
    pub(crate) body: Option<Bytes>,
    /// Which layers apply.
    pub(crate) kind: CallKind,
    /// A gRPC call (a POST of one framed message, see `grpc.rs`): never cached or coalesced; retried and
    /// hedged when its method is idempotent.
    pub(crate) rpc: bool,
    /// Whether the answer keeps the downstream's `ETag` ([`Answer::etag`]): only a forwarding route uses it,
    /// so the other calls skip the header look-up.
    pub(crate) keep_tag: bool,
}

impl CallRequest {
    /// A GET of `path_and_query` for `ctx`, through the cache when `kind` is [`CallKind::Read`].
    pub(crate) fn get(
        ctx: &RequestContext,
        path_and_query: &str,
        extra: &[(HeaderName, HeaderValue)],
        kind: CallKind,
    ) -> Self {
        Self {
            ctx: ctx.clone(),
            method: Method::GET,
            path_and_query: Arc::from(path_and_query),
            extra: extra.to_vec(),
            body: None,
            kind,
            rpc: false,
            keep_tag: false,
        }
    }

    /// An unsafe call (`method` must not be safe): one attempt, nothing cached.
    pub(crate) fn once(
        ctx: &RequestContext,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
        extra: &[(HeaderName, HeaderValue)],
    ) -> Self {
        Self {
            ctx: ctx.clone(),
            method,
            path_and_query: Arc::from(path_and_query),
            extra: extra.to_vec(),
            body,
            kind: CallKind::Once,
            rpc: false,
            keep_tag: false,
        }
    }

    /// A unary gRPC call of `path` (`/package.Service/Method`) with the framed message `body`: a
    /// [`CallKind::Read`] (retried, hedged, its client-facing cache policy recorded, never cached) when
    /// `idempotent`, else [`CallKind::Once`].
    pub(crate) fn rpc(ctx: &RequestContext, path: &str, body: Bytes, idempotent: bool) -> Self {
        Self {
            ctx: ctx.clone(),
            method: Method::POST,
            path_and_query: Arc::from(path),
            extra: Vec::new(),
            body: Some(body),
            kind: if idempotent {
                CallKind::Read
            } else {
                CallKind::Once
            },
            rpc: true,
            keep_tag: false,
        }
    }

    /// The same call on behalf of `ctx` (a background refresh, a waiter calling for itself).
    pub(crate) fn for_context(&self, ctx: RequestContext) -> Self {
        Self {
            ctx,
            ..self.clone()
        }
    }

    /// The request context.
    pub(crate) fn ctx(&self) -> &RequestContext {
        &self.ctx
    }

    /// When the request's budget is spent: no attempt starts after it, none outlives it.
    pub(crate) fn deadline(&self) -> Instant {
        self.ctx.deadline()
    }

    /// The request's trace context (the parent of the `traceparent` sent).
    pub(crate) fn trace(&self) -> &TraceContext {
        self.ctx.trace()
    }

    /// The verified identity's headers, rendered once for the request.
    pub(crate) fn identity(&self) -> &IdentityHeaders {
        self.ctx.identity_headers()
    }

    /// Whether the call may be repeated (retried, hedged) without changing anything: a GET or HEAD, or a
    /// gRPC call of an idempotent method, that is not sent [`CallKind::Once`].
    pub(crate) fn idempotent(&self) -> bool {
        self.kind != CallKind::Once
            && (self.rpc || self.method == Method::GET || self.method == Method::HEAD)
    }
}

/// An answer of a downstream call: a 2xx (any call), or a 4xx of an unsafe call (a command's refusal, see
/// [`crate::downstream::command`]); the body and its `Cache-Control`, if any.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    /// The status (always 2xx for GETs: other statuses are errors).
    pub(crate) status: StatusCode,
    /// The body.
    pub(crate) body: Bytes,
    /// The `Cache-Control` header value.
    pub(crate) cache_control: Option<String>,
    /// The downstream's `ETag`, when it sent one and the call asked for it ([`CallRequest::keep_tag`]); not kept
    /// by the response cache (a cached body has none), and a coalesced call gets its leader's answer as it is.
    pub(crate) etag: Option<HeaderValue>,
}

impl Answer {
    /// A 200 answer with `body` (served from the cache).
    pub(crate) fn cached(body: Bytes) -> Self {
        Self {
            status: StatusCode::OK,
            body,
            cache_control: None,
            etag: None,
        }
    }
}
