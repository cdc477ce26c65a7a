//! The typed failure of one downstream call. Its `Display` is for logs only: it may name the downstream and
//! carry library detail, so it is never sent to a client (see [`crate::BffError::from_part`]).

use std::fmt;

/// How a downstream call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownstreamErrorKind {
    /// No connection could be made (refused, reset before an answer, DNS).
    Connect,
    /// The call's own timeout expired.
    Timeout,
    /// The request's time budget was spent before or during the call.
    Deadline,
    /// The downstream answered 404.
    NotFound,
    /// The downstream answered another non-2xx status.
    Status(u16),
    /// The gRPC downstream answered `UNAVAILABLE` (or its proxy 429/502/503/504): retried when idempotent;
    /// 503 to the client.
    Unavailable,
    /// The gRPC downstream answered `PERMISSION_DENIED`: 403 to the client.
    Forbidden,
    /// The gRPC downstream answered another status than `OK`, `NOT_FOUND`, `UNAVAILABLE`,
    /// `DEADLINE_EXCEEDED` (a [`DownstreamErrorKind::Timeout`]) and `PERMISSION_DENIED`: 502 to the client.
    GrpcStatus(u32),
    /// The answer could not be read (connection reset or closed after connecting, cut mid-body).
    Body,
    /// The body is not the JSON (or the protobuf message) expected.
    Decode,
    /// The body exceeds the configured size cap.
    TooLarge,
    /// Not called: the downstream's circuit breaker is open (failing fast) for about `retry_after_ms` more.
    CircuitOpen {
        /// Milliseconds until the breaker admits a probe again.
        retry_after_ms: u64,
    },
    /// Not called: the downstream's bulkhead (`max_concurrent`) is full.
    Saturated,
}

/// The failure of one call to the named downstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownstreamError {
    /// The downstream's configured name.
    pub downstream: String,
    /// What went wrong.
    pub kind: DownstreamErrorKind,
}

impl DownstreamError {
    /// A failure of `downstream`.
    pub fn new(downstream: impl Into<String>, kind: DownstreamErrorKind) -> Self {
        Self {
            downstream: downstream.into(),
            kind,
        }
    }
}

impl fmt::Display for DownstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            DownstreamErrorKind::Connect => "unreachable".to_string(),
            DownstreamErrorKind::Timeout => "call timed out".to_string(),
            DownstreamErrorKind::Deadline => "request deadline exceeded".to_string(),
            DownstreamErrorKind::NotFound => "not found".to_string(),
            DownstreamErrorKind::Status(s) => format!("answered status {s}"),
            DownstreamErrorKind::Unavailable => "answered UNAVAILABLE".to_string(),
            DownstreamErrorKind::Forbidden => "answered PERMISSION_DENIED".to_string(),
            DownstreamErrorKind::GrpcStatus(code) => format!("answered gRPC status {code}"),
            DownstreamErrorKind::Body => "answer could not be read".to_string(),
            DownstreamErrorKind::Decode => "body is not the expected JSON".to_string(),
            DownstreamErrorKind::TooLarge => "body exceeds the size cap".to_string(),
            DownstreamErrorKind::CircuitOpen { .. } => "circuit breaker open".to_string(),
            DownstreamErrorKind::Saturated => "too many calls in flight (bulkhead)".to_string(),
        };
        write!(f, "downstream {}: {what}", self.downstream)
    }
}

impl std::error::Error for DownstreamError {}
