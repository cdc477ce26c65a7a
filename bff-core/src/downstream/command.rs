//! Commands: the one unsafe call (POST, PUT, PATCH, DELETE) a write makes to its downstream.
//!
//! A command goes through the same breaker, bulkhead, balancing, per-call timeout and request deadline as
//! every call, and carries the same trace and identity headers, but it is **never retried, never hedged,
//! never coalesced with another caller's call and never answered from (or stored in) the response cache**:
//! a second attempt could order twice. Its 4xx answers (the service's refusals: 404, 409, 422, ...) come back
//! as a [`Reply`] for the handler to map; 5xx, broken answers and timeouts are [`DownstreamError`]s. When the
//! call was sent but no answer arrived in time (timeout, deadline, connection cut mid-answer) the outcome is
//! unknown: [`command_error`] turns that into a 504 `outcome_unknown` that tells the client to retry with
//! the same `Idempotency-Key`.

use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Downstream, DownstreamError, DownstreamErrorKind};
use crate::context::RequestContext;
use crate::error::BffError;

/// The client answer of a command that created a resource: `201 Created` with the view as JSON and a
/// `Location` naming it (`location` of the view), or the problem document of the error.
pub fn created<T: Serialize>(
    result: Result<T, BffError>,
    location: impl FnOnce(&T) -> String,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match result {
        Ok(view) => {
            let location = location(&view);
            (
                StatusCode::CREATED,
                [(axum::http::header::LOCATION, location)],
                axum::Json(view),
            )
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// The answer of a command: a 2xx with its result, or a 4xx refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The downstream's status (2xx or 4xx).
    pub status: StatusCode,
    /// The body as received (bounded by the downstream's `max_response_bytes`).
    pub body: Bytes,
}

/// How a gateway tells its clients about one refusal code of a service (e.g. the service's `cart_empty`
/// becomes 409 `cart_empty` with the gateway's own detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The service's code.
    pub service_code: &'static str,
    /// The client status.
    pub status: StatusCode,
    /// The client's stable code.
    pub code: &'static str,
    /// The client-facing explanation.
    pub detail: &'static str,
}

impl Reply {
    /// The client error of a refused (4xx) command of `part`, given the service's refusal code, if any:
    /// the matching entry of `table`; else 404 → `not_found`, 409 → `conflict`, 422 → `rejected`; any other
    /// 4xx means the gateway sent something the service did not accept (a bug): 502.
    pub fn refusal(
        &self,
        part: &'static str,
        service_code: Option<&str>,
        table: &[Refusal],
    ) -> BffError {
        if let Some(r) = table
            .iter()
            .find(|r| Some(r.service_code) == service_code && r.status.is_client_error())
        {
            return BffError::Refused {
                status: r.status,
                code: r.code,
                detail: r.detail,
            };
        }
        match self.status {
            StatusCode::NOT_FOUND => BffError::NotFound,
            StatusCode::CONFLICT => BffError::Refused {
                status: StatusCode::CONFLICT,
                code: "conflict",
                detail: "the command conflicts with the current state",
            },
            StatusCode::UNPROCESSABLE_ENTITY => BffError::Refused {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "rejected",
                detail: "the command was refused",
            },
            status => {
                tracing::warn!(
                    part,
                    status = status.as_u16(),
                    ?service_code,
                    "command refused as malformed by its service"
                );
                BffError::BadGateway { part }
            }
        }
    }

    /// Whether the command succeeded (2xx).
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The body decoded as `T`; a [`DownstreamErrorKind::Decode`] error of `downstream` when it is not.
    pub fn json<T: DeserializeOwned>(&self, downstream: &Downstream) -> Result<T, DownstreamError> {
        downstream.decode(&self.body)
    }
}

impl Downstream {
    /// Sends one command: `method` (must be unsafe: POST, PUT, PATCH or DELETE) to `path_and_query` (already
    /// encoded) with `body` as JSON (if any) and `extra` headers (e.g. the forwarded `Idempotency-Key`).
    /// Exactly one attempt; see the module docs.
    pub async fn command<B: Serialize + ?Sized>(
        &self,
        ctx: &RequestContext,
        method: Method,
        path_and_query: &str,
        body: Option<&B>,
        extra: &[(HeaderName, HeaderValue)],
    ) -> Result<Reply, DownstreamError> {
        if method.is_safe() {
            // A programming error of the gateway: reads go through `get_json`, which caches and retries.
            tracing::error!(downstream = %self.name(), %method, "command() called with a safe method");
            return Err(self.err(DownstreamErrorKind::Decode));
        }
        let body = match body {
            None => None,
            Some(b) => Some(Bytes::from(serde_json::to_vec(b).map_err(|e| {
                tracing::error!(downstream = %self.name(), error = %e, "command body not serialisable");
                self.err(DownstreamErrorKind::Decode)
            })?)),
        };
        // The call stack with the unsafe layers skipped: no cache, no coalescing, one attempt.
        let req = super::CallRequest::once(ctx, method, path_and_query, body, extra);
        let answer = Box::pin(self.send(req)).await?;
        Ok(Reply {
            status: answer.status,
            body: answer.body,
        })
    }
}

impl Downstream {
    /// POSTs an `application/x-www-form-urlencoded` body (an OAuth token request) to `path_and_query` with
    /// `extra` headers (client authentication): one attempt, like [`Downstream::command`]; 2xx and 4xx come
    /// back as a [`Reply`].
    pub async fn post_form(
        &self,
        ctx: &RequestContext,
        path_and_query: &str,
        form: String,
        extra: &[(HeaderName, HeaderValue)],
    ) -> Result<Reply, DownstreamError> {
        let mut headers = vec![(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        )];
        headers.extend_from_slice(extra);
        let req = super::CallRequest::once(
            ctx,
            Method::POST,
            path_and_query,
            Some(Bytes::from(form)),
            &headers,
        );
        let answer = Box::pin(self.send(req)).await?;
        Ok(Reply {
            status: answer.status,
            body: answer.body,
        })
    }
}

impl Downstream {
    /// Read-your-writes: removes the cached answers of GETs of `paths_and_queries` (exactly as the reads
    /// request them) made with the caller's identity — and their shared entries, for a `shared` downstream —
    /// from the local cache and the Redis level, so the caller's next read shows its write. Called by a
    /// handler after a successful command, for the reads the command made stale.
    pub async fn invalidate(&self, ctx: &RequestContext, paths_and_queries: &[String]) {
        let cache = self.cache();
        for path in paths_and_queries {
            let keys = crate::cache::Keys::new(self.name(), cache.config.shared, ctx, path, &[]);
            for key in keys.all() {
                cache.store.remove(key).await;
            }
        }
    }
}

/// What the client is told when the command of `part` failed: like [`BffError::from_part`], except that a
/// command sent without an answer in time (timeout, deadline, connection cut after sending) may have taken
/// effect, so the client gets 504 `outcome_unknown` (retry with the same `Idempotency-Key`) — never a plain
/// error that suggests nothing happened.
pub fn command_error(part: &'static str, error: &DownstreamError) -> BffError {
    match error.kind {
        DownstreamErrorKind::Timeout
        | DownstreamErrorKind::Deadline
        | DownstreamErrorKind::Body => BffError::OutcomeUnknown { part },
        _ => BffError::from_part(part, error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timeouts and cut answers are "outcome unknown" (504); a refused connection or an open breaker is not.
    #[test]
    fn unknown_outcomes_are_504() {
        let e = |k| DownstreamError::new("orders", k);
        for kind in [
            DownstreamErrorKind::Timeout,
            DownstreamErrorKind::Deadline,
            DownstreamErrorKind::Body,
        ] {
            let error = command_error("order", &e(kind));
            assert_eq!(error, BffError::OutcomeUnknown { part: "order" });
            assert_eq!(error.status(), StatusCode::GATEWAY_TIMEOUT);
        }
        assert_eq!(
            command_error("order", &e(DownstreamErrorKind::Connect)).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
