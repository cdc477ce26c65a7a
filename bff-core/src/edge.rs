//! The edge pipeline every request passes, assembled in one place. Outermost first:
//!
//! 1. **request id + trace context** — so every later log line, error body and downstream call carries them;
//! 2. **span, metrics, access log** — one `request` span per request (exported over OTLP when sampled, with
//!    its parts' and attempts' spans, see [`crate::otel`]); at completion the request is counted
//!    by route template, method and status with its latency and its parts' outcomes, and one access line is
//!    written (see `crate::observe`);
//! 3. **identity strip** — client-sent `x-bff-*` headers are removed before anything can read them;
//! 4. **hygiene** (`crate::hygiene`) — TRACE/CONNECT refused, request target bounded (414), the path must be in
//!    canonical form (400), no credentials in the query, exactly one Host header on HTTP/1.1, no body on a
//!    method that takes none (400, connection closed), and a connection that carried a chunked body closed
//!    after its answer: what auth checks is what routes, and nothing hides behind a body;
//! 5. **load shedding** — beyond the global or per-route limit of requests in flight, a fast 503 `overloaded`
//!    with `Retry-After`, before authentication spends any CPU and without queueing;
//! 6. **authentication** — non-public paths need a valid credential (401 otherwise), before routing, so an
//!    unauthenticated caller learns nothing about which routes exist; a WebSocket route ([`crate::live`])
//!    is authenticated by its `Origin` (403) and single-use `?ticket=` (401) instead; with browser sessions
//!    ([`crate::session`]) a request without `Authorization` may present the session cookie instead (with
//!    `X-CSRF: 1`, and an allowed `Origin` when unsafe), and the `Cookie` header is removed here; then **rate limiting**, right after
//!    authentication because policies key on the verified identity (partner, tier, user) besides client IP
//!    and route; a failed authentication is charged to the client IP's failed-attempt budget instead (429
//!    once it is spent). See [`crate::ratelimit`];
//! 7. **deadline** — the request's time budget, started at entry (so authentication, a JWKS fetch included,
//!    is inside it: 504 when it is spent before the credential is checked), shared by every downstream call,
//!    enforced here as a safety net;
//! 8. **error normalisation** — any 4xx/5xx that is not already problem+json (a framework rejection, a panic,
//!    a body-limit refusal) is replaced by the problem document of its status, so nothing internal leaks;
//! 9. then, inside: panic catcher → request body limit → router;
//! 10. on the way out, standard security headers (`nosniff`, `DENY` framing, `no-referrer`, a deny-all CSP)
//!     are added to every response that does not set its own; and **client-facing caching**: a successful
//!     GET gets the `Cache-Control` merged from its parts' directives (strictest wins, see
//!     [`crate::cache::client`]) and `Vary` on the credential header.
//!
//! Outside the edge sit the compression layer and the conditional-GET layer ([`crate::etag`]), so tags
//! are computed over the exact bytes sent.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use tokio::time::Instant;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::auth::{Authenticator, Verified, strip_identity_headers};
use crate::compose::PARTIAL_HEADER;
use crate::context::{RequestContext, with_request_id};
use crate::error::{BffError, PROBLEM_JSON};
use crate::metrics::{RouteMetrics, RouteMetricsCell};
use crate::ratelimit::{RateLimiter, RequestFacts, Verdict};
use crate::resilience::DEGRADED_HEADER;
use crate::resilience::shed::LoadShedder;
use crate::trace::{self, TraceContext};

/// Paths served without authentication.
pub use crate::routes::config::PUBLIC_PATHS;

/// What the edge needs, shared by all requests.
#[derive(Debug)]
pub(crate) struct EdgeState {
    /// The credential check.
    pub(crate) auth: Authenticator,
    /// The time budget of one request.
    pub(crate) budget: Duration,
    /// Longest accepted request target.
    pub(crate) max_uri_bytes: usize,
    /// Largest accepted request body.
    pub(crate) max_body_bytes: usize,
    /// The global and per-route limits of requests in flight.
    pub(crate) shed: LoadShedder,
    /// Rate limits, when any are configured.
    pub(crate) limiter: Option<RateLimiter>,
    /// The credential header successful responses vary on (`authorization`, `x-api-key`), if any.
    pub(crate) vary_on: Option<axum::http::HeaderName>,
    /// Where requests, refusals and parts are counted.
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// Whether responses carry a `Server-Timing` header with per-part durations.
    pub(crate) server_timing: bool,
    /// Trace export, when `[telemetry.otlp]` is configured.
    pub(crate) tracer: Option<Arc<crate::otel::Tracer>>,
    /// Browser sessions, when `[auth.session]` is enabled.
    pub(crate) sessions: Option<Arc<crate::session::Sessions>>,
    /// WebSocket tickets and origins.
    pub(crate) live: Arc<crate::live::Live>,
    /// The WebSocket routes, authenticated by ticket instead of a bearer credential.
    pub(crate) ticket_paths: Vec<String>,
}

/// `x-request-id`, as a header name ready to insert.
const REQUEST_ID: HeaderName = HeaderName::from_static(trace::REQUEST_ID);
/// `traceparent`, as a header name ready to insert.
const TRACEPARENT: HeaderName = HeaderName::from_static(trace::TRACEPARENT);

/// Paths never shed: liveness must answer under overload, or an orchestrator restarts a busy gateway.
const NEVER_SHED: &[&str] = &["/healthz"];

/// Extra time the edge grants a handler past the deadline before answering 504 itself (handlers normally
/// answer first, since every part is bounded by the same deadline).
const DEADLINE_GRACE: Duration = Duration::from_millis(20);

/// The edge as a tower layer around each route (see [`crate::gateway`]): [`Edge`] services sharing one
/// [`EdgeState`].
#[derive(Debug, Clone)]
pub(crate) struct EdgeLayer(pub(crate) Arc<EdgeState>);

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            state: self.0.clone(),
            inner,
            route: RouteMetricsCell::default(),
        }
    }
}

/// The edge around one route's `inner` service. Hand-written rather than `axum::middleware::from_fn`, which
/// boxes the inner service again on every request and awaits it through a second boxed future (bench/notes.md).
#[derive(Debug, Clone)]
pub(crate) struct Edge<S> {
    state: Arc<EdgeState>,
    inner: S,
    /// The metric series of the route this service serves, shared by its clones.
    route: RouteMetricsCell,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The service polled ready is the one called; a clone stays for the next request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let route = (request.extensions().get::<MatchedPath>())
            .map_or(crate::observe::UNMATCHED, MatchedPath::as_str);
        let route = self.route.get(&self.state.metrics, route);
        Box::pin(edge(self.state.clone(), request, inner, route).map(Ok))
    }
}

/// The edge pipeline: the steps of the module docs, each phase a named function below; `next` is the
/// route's inner service, ready to be called.
async fn edge<S>(
    state: Arc<EdgeState>,
    mut request: Request,
    mut next: S,
    route_metrics: Arc<RouteMetrics>,
) -> Response
where
    S: Service<Request, Error = Infallible>,
    S::Response: IntoResponse,
{
    let started = Instant::now();
    // The budget starts at entry: authentication (a JWKS fetch included) and rate limiting spend it too.
    let deadline = started + state.budget;
    let method = request.method().clone();
    let in_flight = crate::observe::InFlight::start(&state.metrics);
    let request_id = trace::request_id(request.headers());
    let mut trace = TraceContext::from_headers(request.headers());
    // Parent-based sampling (when trace export is on) may clear the sampled flag of a trace started here.
    let spans = state.tracer.as_ref().and_then(|t| t.sample(&mut trace));
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
        trace_id = %trace.trace_id,
    );
    // The answer's `traceparent` when no context is made (a request refused before routing).
    let refused_trace = trace.clone();
    let rid = request_id.clone();
    let trace_id = trace.trace_id;
    let observed = state.clone();
    let route_in = route_metrics.clone();
    let spans_in = spans.clone();
    let handled = async move {
        let route = route_in.route();
        let route_in = &route_in;
        strip_identity_headers(request.headers_mut());
        // Hygiene first: the path the auth rule sees below is the one the router will see.
        let (hygiene, framing, close) = check_hygiene(&state, &request);
        // The session endpoints authenticate themselves (login, callback, logout, back-channel logout).
        let session_path =
            state.sessions.is_some() && request.uri().path().starts_with(crate::session::PREFIX);
        let public = PUBLIC_PATHS.contains(&request.uri().path()) || session_path;
        // WebSocket routes: `Origin` and a single-use ticket instead of a bearer credential.
        let ticket_path = (state.ticket_paths.iter()).any(|p| p == request.uri().path());
        let session_cookie = take_session_cookie(&state, &mut request, session_path);
        let admitted = match shed(&state, &request, route) {
            Ok(admitted) => admitted,
            Err(refused) => return (refused.into_response(), None),
        };
        let refused_by_hygiene = hygiene.is_err();
        let identity = match hygiene {
            Err(e) => Err(e),
            Ok(()) if public => Ok(None),
            Ok(()) if ticket_path => (state.live)
                .authenticate(request.headers(), request.uri())
                .map(|identity| Some(Verified::new(identity))),
            Ok(()) => {
                let cert = request
                    .extensions()
                    .get::<std::sync::Arc<crate::tls::ClientCertificate>>();
                let cert = cert.map(|c| &**c);
                let cookie = session_cookie.as_deref();
                authenticate(
                    &state,
                    request.method(),
                    request.headers(),
                    cert,
                    cookie,
                    deadline,
                )
                .await
            }
        };
        // A credential that could not be checked in time is not a failed authentication: it is not
        // charged to the client's failed-attempt budget.
        let auth_timed_out = matches!(identity, Err(BffError::DeadlineExceeded { .. }));
        // Rate limiting (step 4b): one store decision per non-public request (the session endpoints count as
        // non-public here: a login flood is limited per client address); public paths are never limited.
        let limited = (!public || session_path) && !refused_by_hygiene && !auth_timed_out;
        let Verdict {
            denied,
            headers: limit_headers,
            refused_by,
        } = rate_limit(&state, &request, caller_of(&identity), limited).await;
        crate::observe::refusals(
            &state.metrics,
            identity.as_ref().err(),
            refused_by.as_deref(),
        );
        let mut ctx_out = None;
        let mut response = match (identity, denied) {
            (_, Some(denied)) => denied.into_response(),
            (Err(e), None) => {
                tracing::info!(reason = %e, "refused before routing");
                e.into_response()
            }
            (Ok(identity), None) => {
                let ctx = RequestContext::verified(request_id, trace, identity, deadline)
                    .for_route(route_in)
                    .with_spans(spans_in);
                // Phase 7, the routed request: the context in the request's extensions, the router (panic
                // catcher, body limit, handler) bounded by the deadline, then what the parts recorded.
                let method = request.method().clone();
                request.extensions_mut().insert(ctx.clone());
                let mut response =
                    match tokio::time::timeout_at(deadline + DEADLINE_GRACE, next.call(request))
                        .await
                    {
                        Ok(Ok(response)) => response.into_response(),
                        Ok(Err(never)) => match never {},
                        Err(_) => BffError::DeadlineExceeded { part: None }.into_response(),
                    };
                decorate(&state, &mut response, &ctx, &method);
                ctx_out = Some(ctx);
                response
            }
        };
        response.headers_mut().extend(limit_headers);
        response = normalize_error(response);
        // A 401 names the credential this gateway takes (whoever produced it: the authenticator or a handler).
        if response.status() == StatusCode::UNAUTHORIZED {
            let challenge = state.auth.challenge();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        if close && framing.version <= axum::http::Version::HTTP_11 {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        drop(admitted);
        (response, ctx_out)
    };
    let (mut response, ctx) = with_request_id(rid.clone(), handled.instrument(span.clone())).await;
    // Metrics, the access log line and `Server-Timing`, once the final status is known.
    crate::observe::completed(
        &mut response,
        crate::observe::Completed {
            route: &route_metrics,
            method: &method,
            started,
            ctx: ctx.as_ref(),
            request_id: rid.as_str(),
            trace_id,
            server_timing: observed.server_timing,
            spans: spans.as_ref(),
        },
        &span,
    );
    if let Some(spans) = &spans {
        spans.request(crate::otel::RequestEnd {
            method: method.as_str(),
            route: Some(route_metrics.route()).filter(|r| *r != crate::observe::UNMATCHED),
            status: response.status().as_u16(),
        });
    }
    drop(in_flight);
    let headers = response.headers_mut();
    crate::hygiene::add_security_headers(headers, 2);
    headers.insert(REQUEST_ID, rid.header_value().clone());
    let traceparent = match &ctx {
        Some(ctx) => ctx.traceparent().clone(),
        None => refused_trace.header_value(),
    };
    headers.insert(TRACEPARENT, traceparent);
    response
}

/// Phase 4, hygiene: the request line, path and framing checks of [`crate::hygiene`]; also whether the
/// connection must close after the answer (a chunked body, or a refused request that may still carry one).
fn check_hygiene(
    state: &EdgeState,
    request: &Request,
) -> (Result<(), BffError>, crate::hygiene::Framing, bool) {
    let framing = crate::hygiene::Framing {
        version: request.version(),
        has_body: !hyper::body::Body::is_end_stream(request.body()),
    };
    let mut close = crate::hygiene::closes_connection(framing.version, request.headers());
    let hygiene = crate::hygiene::check_request(
        request.method(),
        request.uri(),
        request.headers(),
        framing,
        state.max_uri_bytes,
        state.max_body_bytes,
    );
    // A request refused with a body it may still carry: the unread bytes must never be parsed as a request.
    close |= hygiene.is_err() && framing.has_body;
    (hygiene, framing, close)
}

/// Phase 5, load shedding: admitted requests hold their slot until the response is built; the others are
/// refused at once (no queue, so memory stays bounded), before authentication. Liveness is never shed.
fn shed(
    state: &EdgeState,
    request: &Request,
    route: &str,
) -> Result<Option<crate::resilience::shed::Admitted>, BffError> {
    if NEVER_SHED.contains(&request.uri().path()) {
        return Ok(None);
    }
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    match state.shed.admit(matched) {
        Ok(admitted) => Ok(Some(admitted)),
        Err(e) => {
            tracing::info!(status = 503, "request shed: overloaded");
            crate::observe::shed(&state.metrics, route);
            Err(e)
        }
    }
}

/// Browser sessions: the cookie is the credential when no bearer token is sent; the browser's `Cookie`
/// header never goes further than the edge (nothing downstream can see or forward it). The session
/// endpoints (`session_path`) read their own cookies.
fn take_session_cookie(
    state: &EdgeState,
    request: &mut Request,
    session_path: bool,
) -> Option<String> {
    match &state.sessions {
        Some(sessions) if !session_path => {
            let cookie = (!request.headers().contains_key(header::AUTHORIZATION))
                .then(|| {
                    sessions
                        .session_cookie(request.headers())
                        .map(str::to_owned)
                })
                .flatten();
            request.headers_mut().remove(header::COOKIE);
            cookie
        }
        _ => None,
    }
}

/// The outcome of authentication: the verified caller (shared, its headers rendered), none (public path,
/// authentication off), or the refusal.
type Authenticated = Result<Option<Arc<Verified>>, BffError>;

/// Phase 6, authentication of a non-public path, within the request's budget (504 when it is spent first):
/// the session `cookie` when there is one, else the gateway's credential (bearer token, API key, client
/// certificate). Takes references to the request's parts only: its body is not `Sync`.
async fn authenticate(
    state: &EdgeState,
    method: &Method,
    headers: &axum::http::HeaderMap,
    cert: Option<&crate::tls::ClientCertificate>,
    cookie: Option<&str>,
    deadline: Instant,
) -> Authenticated {
    let verify = async {
        match (&state.sessions, cookie) {
            // Boxed: a session lookup (and a possible token refresh) is a large future, and every request's
            // edge future would otherwise carry its size and copy it on each move (~33k instructions of
            // memcpy per request, measured with bench/callgrind).
            (Some(sessions), Some(cookie)) => {
                let identity = Box::pin(sessions.authenticate(method, headers, cookie)).await;
                identity.map(|identity| identity.map(Verified::new))
            }
            (Some(sessions), None) if !sessions.bearer_allowed() => {
                Err(crate::session::session_expired())
            }
            _ => state.auth.authenticate_shared(headers, cert).await,
        }
    };
    match tokio::time::timeout_at(deadline, verify).await {
        Ok(verified) => verified,
        Err(_) => {
            tracing::warn!("authentication did not finish within the request's budget");
            Err(BffError::DeadlineExceeded { part: None })
        }
    }
}

/// Phase 6b, rate limiting: one store decision for a `limited` request (not public, not refused by hygiene,
/// not timed out in authentication); public paths are never limited. The request's facts are read before
/// the future is made, and only when a limiter will use them.
fn rate_limit<'a>(
    state: &'a EdgeState,
    request: &'a Request,
    identity: Result<Option<&'a crate::auth::Identity>, &'a BffError>,
    limited: bool,
) -> impl Future<Output = Verdict> + Send + 'a {
    let admit = state
        .limiter
        .as_ref()
        .filter(|_| limited)
        .map(|limiter| (limiter, RequestFacts::of(request)));
    async move {
        match admit {
            Some((limiter, facts)) => limiter.admit(&facts, identity).await,
            None => Verdict::default(),
        }
    }
}

/// The verified identity (or the refusal) of an authentication outcome, as the limiter reads it.
fn caller_of(authenticated: &Authenticated) -> Result<Option<&crate::auth::Identity>, &BffError> {
    authenticated
        .as_ref()
        .map(|caller| caller.as_deref().map(Verified::identity))
}

/// Phase 7b, what the parts recorded, on a routed response: `bff-partial` / `bff-degraded`, and the
/// client-facing caching headers.
fn decorate(state: &EdgeState, response: &mut Response, ctx: &RequestContext, method: &Method) {
    let partial = ctx.partial_parts();
    if !partial.is_empty()
        && response.status().is_success()
        && let Ok(v) = HeaderValue::from_str(&partial.join(","))
    {
        response.headers_mut().insert(PARTIAL_HEADER, v);
    }
    let degraded = ctx.degraded_parts();
    if !degraded.is_empty() && response.status().is_success() {
        let list: Vec<String> = degraded
            .iter()
            .map(|(p, source)| format!("{p}={source}"))
            .collect();
        if let Ok(v) = HeaderValue::from_str(&list.join(",")) {
            response.headers_mut().insert(DEGRADED_HEADER, v);
        }
    }
    // Client-facing caching: Cache-Control from the parts (strictest wins), Vary on the credential.
    crate::cache::client::apply(response, ctx, method, state.vary_on.as_ref());
    if state.sessions.is_some() && response.status().is_success() {
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("cookie"));
    }
}

/// Replaces a 4xx/5xx that is not problem+json with the problem document of its status.
fn normalize_error(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    if is_problem {
        return response;
    }
    let error = match status {
        StatusCode::NOT_FOUND => BffError::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => BffError::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => BffError::PayloadTooLarge,
        StatusCode::URI_TOO_LONG => BffError::UriTooLong,
        s if s.is_client_error() => BffError::BadRequest {
            detail: "the request is malformed".into(),
        },
        _ => BffError::Internal,
    };
    tracing::debug!(
        status = status.as_u16(),
        "error response normalised to problem+json"
    );
    let mut normalized = error.into_response();
    if status == StatusCode::METHOD_NOT_ALLOWED
        && let Some(allow) = response.headers().get(header::ALLOW)
    {
        normalized
            .headers_mut()
            .insert(header::ALLOW, allow.clone());
    }
    normalized
}
