//! What the edge records about every request once its final status is known: the request metrics
//! (count, latency, in flight), the outcome of each composed part (`bff_part_outcomes_total`), refusals
//! (shed, rate limited, authentication), the one access log line, and the opt-in `Server-Timing` header.
//!
//! The access line carries the route template, method, status, duration, request and trace ids and each
//! part's outcome and duration, never a credential: no header value, query string or body is logged.

use std::fmt::Write;

use axum::http::{HeaderValue, Method};
use axum::response::Response;
use tokio::time::Instant;

use crate::context::RequestContext;
use crate::error::BffError;
use crate::metrics::{Metrics, PartLabels, PartOutcome, RequestLabels, method_label, one};

/// The route label of a request that matched no route (404, or refused before routing).
pub(crate) const UNMATCHED: &str = "unmatched";

/// Holds one slot of `bff_http_requests_in_flight` until dropped.
pub(crate) struct InFlight(prometheus_client::metrics::gauge::Gauge);

impl InFlight {
    /// Counts a request in flight.
    pub(crate) fn start(metrics: &Metrics) -> Self {
        metrics.in_flight.inc();
        Self(metrics.in_flight.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Counts a request shed on `route`.
pub(crate) fn shed(metrics: &Metrics, route: &str) {
    metrics.shed.get_or_create(&one("route", route)).inc();
}

/// Counts a failed authentication (by its fixed reason) and a rate-limit refusal (by policy).
pub(crate) fn refusals(metrics: &Metrics, auth: Option<&BffError>, refused_by: Option<&str>) {
    if let Some(BffError::Unauthenticated { reason }) = auth {
        metrics
            .auth_failures
            .get_or_create(&one("reason", *reason))
            .inc();
    }
    if let Some(policy) = refused_by {
        metrics
            .rate_limited
            .get_or_create(&one("policy", policy))
            .inc();
    }
}

/// One finished request, as the edge saw it.
pub(crate) struct Completed<'a> {
    /// Route template or [`UNMATCHED`].
    pub(crate) route: &'a str,
    /// Request method.
    pub(crate) method: &'a Method,
    /// When the edge received it.
    pub(crate) started: Instant,
    /// Its context, when it reached the router.
    pub(crate) ctx: Option<&'a RequestContext>,
    /// Request id.
    pub(crate) request_id: &'a str,
    /// W3C trace id.
    pub(crate) trace_id: &'a str,
    /// Whether to add `Server-Timing`.
    pub(crate) server_timing: bool,
    /// The request's trace recording, when sampled: each part's span is recorded with its outcome.
    pub(crate) spans: Option<&'a crate::otel::RequestSpans>,
}

/// Records the metrics of a finished request, writes its access line (inside `span`) and, when enabled,
/// adds `Server-Timing`.
pub(crate) fn completed(
    metrics: &Metrics,
    response: &mut Response,
    done: Completed<'_>,
    span: &tracing::Span,
) {
    let elapsed = done.started.elapsed();
    let status = response.status().as_u16();
    metrics
        .requests
        .get_or_create(&RequestLabels {
            route: done.route.to_owned(),
            method: method_label(done.method),
            status,
        })
        .inc();
    metrics
        .request_duration
        .get_or_create(&one("route", done.route))
        .observe(elapsed.as_secs_f64());
    let mut parts_log = String::new();
    let mut timing = String::new();
    if let Some(ctx) = done.ctx {
        let degraded = ctx.degraded_parts();
        for part in ctx.part_records() {
            let outcome = match degraded.iter().find(|(p, _)| *p == part.name) {
                Some((_, "default")) => PartOutcome::Default,
                Some(_) => PartOutcome::Stale,
                None if part.ok => PartOutcome::Ok,
                None => PartOutcome::Failed,
            };
            metrics
                .parts
                .get_or_create(&PartLabels {
                    route: done.route.to_owned(),
                    part: part.name,
                    outcome,
                })
                .inc();
            if let (Some(spans), Some(span)) = (done.spans, part.span) {
                spans.part_done(part.name, span, outcome.as_str());
            }
            let ms = part.duration.as_secs_f64() * 1000.0;
            let sep = if parts_log.is_empty() { "" } else { "," };
            let _ = write!(
                parts_log,
                "{sep}{}={}:{ms:.1}ms",
                part.name,
                outcome.as_str()
            );
            if done.server_timing {
                let _ = write!(
                    timing,
                    ", {};dur={ms:.1};desc=\"{}\"",
                    part.name,
                    outcome.as_str()
                );
            }
        }
    }
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    if done.server_timing {
        let header = format!("total;dur={duration_ms:.1}{timing}");
        if let Ok(v) = HeaderValue::from_str(&header) {
            response.headers_mut().insert("server-timing", v);
        }
    }
    span.in_scope(|| {
        tracing::info!(
            target: "bff::access",
            route = done.route,
            method = %done.method,
            status,
            duration_ms,
            request_id = done.request_id,
            trace_id = done.trace_id,
            parts = parts_log.as_str(),
            "request completed"
        );
    });
}
