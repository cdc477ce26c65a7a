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

/// The answer of a command: a 2xx with its result, or a 4xx refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The downstream's status (2xx or 4xx).
    pub status: StatusCode,
    /// The body as received (bounded by the downstream's `max_response_bytes`).
    pub body: Bytes,
}

impl Reply {
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
        // `call` never retries nor hedges an unsafe method (`retry::is_retryable`); the cache is not involved.
        let answer = Box::pin(self.call(ctx, method, path_and_query, body, extra)).await?;
        Ok(Reply {
            status: answer.status,
            body: answer.body,
        })
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
