//! The label sets of the typed metric families, each value from a bounded vocabulary.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

use crate::downstream::DownstreamErrorKind;

/// `bff_http_requests_total{route,method,status}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template (axum's matched path), or `unmatched`.
    pub route: String,
    /// The method, one of the standard ones or `other`.
    pub method: &'static str,
    /// The status code.
    pub status: u16,
}

/// The label value of a method: the standard methods, anything else `other` (a client cannot grow the set).
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method as M;
    match *method {
        M::GET => "GET",
        M::HEAD => "HEAD",
        M::POST => "POST",
        M::PUT => "PUT",
        M::DELETE => "DELETE",
        M::PATCH => "PATCH",
        M::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// How one downstream attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DownstreamOutcome {
    /// A 2xx answer within the size cap.
    Ok,
    /// A 404 answer.
    NotFound,
    /// Another non-2xx status.
    ErrorStatus,
    /// The attempt's own timeout expired.
    Timeout,
    /// The request's deadline cut the attempt.
    Deadline,
    /// No connection could be made.
    Connect,
    /// Connected, but the answer broke off (reset, closed, not HTTP).
    Reset,
    /// The answer exceeded the size cap.
    TooLarge,
    /// Not sent: the circuit breaker is open.
    BreakerOpen,
    /// Not sent: the bulkhead is full.
    BulkheadFull,
}

impl DownstreamOutcome {
    /// The outcome of an attempt's result.
    pub fn of(result: Result<(), DownstreamErrorKind>) -> Self {
        use DownstreamErrorKind as K;
        match result {
            Ok(()) => Self::Ok,
            Err(K::NotFound) => Self::NotFound,
            Err(K::Status(_) | K::Unavailable | K::Forbidden | K::GrpcStatus(_)) => {
                Self::ErrorStatus
            }
            Err(K::Timeout) => Self::Timeout,
            Err(K::Deadline) => Self::Deadline,
            Err(K::Connect) => Self::Connect,
            Err(K::Body) | Err(K::Decode) => Self::Reset,
            Err(K::TooLarge) => Self::TooLarge,
            Err(K::CircuitOpen { .. }) => Self::BreakerOpen,
            Err(K::Saturated) => Self::BulkheadFull,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::NotFound => "not_found",
            Self::ErrorStatus => "error_status",
            Self::Timeout => "timeout",
            Self::Deadline => "deadline",
            Self::Connect => "connect",
            Self::Reset => "reset",
            Self::TooLarge => "too_large",
            Self::BreakerOpen => "breaker_open",
            Self::BulkheadFull => "bulkhead_full",
        }
    }

    /// Whether the attempt was sent (and so has a latency).
    pub fn was_sent(self) -> bool {
        !matches!(self, Self::BreakerOpen | Self::BulkheadFull)
    }
}

impl EncodeLabelValue for DownstreamOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// `bff_downstream_requests_total{downstream,outcome}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct DownstreamLabels {
    /// The configured downstream name.
    pub downstream: String,
    /// How the attempt ended.
    pub outcome: DownstreamOutcome,
}

/// `bff_circuit_transitions_total{downstream,to}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TransitionLabels {
    /// The configured downstream name.
    pub downstream: String,
    /// The state entered: `closed`, `open`, `half_open`.
    pub to: &'static str,
}

/// How a composed part ended, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartOutcome {
    /// Answered.
    Ok,
    /// Failed: missing from the response (`bff-partial`) or failing the request (required).
    Failed,
    /// Served from a stale value (`bff-degraded: part=stale`).
    Stale,
    /// Served from a configured default (`bff-degraded: part=default`).
    Default,
}

impl PartOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Stale => "stale",
            Self::Default => "default",
        }
    }
}

impl EncodeLabelValue for PartOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// `bff_part_outcomes_total{route,part,outcome}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PartLabels {
    /// The route template.
    pub route: String,
    /// The part name (declared in code or config).
    pub part: &'static str,
    /// How it ended.
    pub outcome: PartOutcome,
}
