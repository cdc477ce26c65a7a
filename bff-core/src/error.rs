//! One error type for everything a client can be told, rendered as RFC 9457 `application/problem+json` with a
//! stable machine `code` and the request id. The cause is logged where it happens; it is never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::downstream::{DownstreamError, DownstreamErrorKind};

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// What went wrong, in terms a client may see. Variants carry only public labels (a part name, a field name),
/// never a host, a URL, a library message or an upstream body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BffError {
    /// 400: the request is malformed; `detail` is written for the client.
    #[error("bad request: {detail}")]
    BadRequest {
        /// Client-facing explanation (never contains internal data).
        detail: String,
    },
    /// 401: no valid credential.
    #[error("unauthenticated: {reason}")]
    Unauthenticated {
        /// Client-facing reason, e.g. `token expired`.
        reason: &'static str,
    },
    /// 403: authenticated, but lacking a required scope.
    #[error("forbidden")]
    Forbidden,
    /// 404: no such route or resource.
    #[error("not found")]
    NotFound,
    /// 405: the route exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 413: request body too large.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 502: a required downstream answered badly (error status, malformed or oversized body).
    #[error("bad downstream answer for part {part}")]
    BadGateway {
        /// The composed part that failed.
        part: &'static str,
    },
    /// 503: a required downstream could not be reached.
    #[error("downstream unavailable for part {part}")]
    Unavailable {
        /// The composed part that failed.
        part: &'static str,
    },
    /// 503: the gateway is not ready (readiness probe).
    #[error("not ready")]
    NotReady,
    /// 504: the request's time budget ran out.
    #[error("deadline exceeded")]
    DeadlineExceeded {
        /// The part that was still running, if known.
        part: Option<&'static str>,
    },
    /// 500: a bug or an unexpected state in the gateway itself.
    #[error("internal error")]
    Internal,
    /// 414: the request target (path + query) is too long.
    #[error("URI too long")]
    UriTooLong,
    /// 503: the circuit breaker of a required part's downstream is open, so the gateway fails fast instead of
    /// calling it; `Retry-After` says when it will be tried again.
    #[error("circuit open for part {part}")]
    CircuitOpen {
        /// The composed part that failed.
        part: &'static str,
        /// Seconds until the downstream is probed again (the `Retry-After` header).
        retry_after_s: u64,
    },
    /// 503: too many requests in flight (the gateway's or a route's limit, or a required part's downstream
    /// bulkhead); refused at once with `Retry-After` instead of queueing.
    #[error("overloaded")]
    Overloaded {
        /// The composed part whose downstream is saturated, if that is the cause.
        part: Option<&'static str>,
        /// Seconds after which to try again (the `Retry-After` header).
        retry_after_s: u64,
    },
    /// 429: a rate limit (or the client address's failed-authentication budget) is spent.
    #[error("rate limited")]
    RateLimited {
        /// Seconds until a request would be admitted (the `Retry-After` header).
        retry_after_s: u64,
    },
    /// 503: the shared rate-limit store is unreachable and the policy is to fail closed.
    #[error("rate limiter unavailable")]
    RateLimiterUnavailable,
    /// 415: the request body's `Content-Type` or `Content-Encoding` is not accepted here.
    #[error("unsupported media type: {detail}")]
    UnsupportedMediaType {
        /// What is accepted, for the client.
        detail: &'static str,
    },
    /// 400: the request body is not well-formed JSON (syntax, truncated, not UTF-8, nested too deep, bad gzip).
    #[error("malformed body: {detail}")]
    MalformedBody {
        /// What is wrong, for the client (position included, never a library name).
        detail: String,
    },
    /// 422: the body is well-formed JSON but not a valid command: each offending field is named by a JSON
    /// Pointer (RFC 6901) in `errors`.
    #[error("invalid body ({} errors)", errors.len())]
    InvalidBody {
        /// The offending fields.
        errors: Vec<FieldError>,
    },
    /// A refusal with its own status and stable code: a command refused by its service (409, 422), or an
    /// `Idempotency-Key` problem (400, 409, 422; 503 `idempotency_unavailable` when its store is down).
    #[error("refused: {code}")]
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// The stable machine code, e.g. `cart_empty`.
        code: &'static str,
        /// Client-facing explanation.
        detail: &'static str,
    },
    /// 504: a command was sent but no answer came in time; it may or may not have taken effect. The client
    /// retries with the same `Idempotency-Key`, so it is not applied twice.
    #[error("outcome unknown for part {part}")]
    OutcomeUnknown {
        /// The command's part.
        part: &'static str,
    },
}

/// One offending field of an invalid body (an entry of the problem's `errors`, as in RFC 9457 §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON Pointer (RFC 6901) to the field in the request body, e.g. `/items/0/quantity`; `""` = the body.
    pub pointer: String,
    /// What is wrong with it.
    pub detail: String,
}

impl BffError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            Self::Unavailable { .. } | Self::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            Self::DeadlineExceeded { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::CircuitOpen { .. } | Self::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::RateLimiterUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MalformedBody { .. } => StatusCode::BAD_REQUEST,
            Self::InvalidBody { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Refused { status, .. } => *status,
            Self::OutcomeUnknown { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The stable machine code (part of the public contract; never renamed).
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { .. } => "bad_request",
            Self::Unauthenticated { .. } => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::BadGateway { .. } => "bad_gateway",
            Self::Unavailable { .. } => "downstream_unavailable",
            Self::NotReady => "not_ready",
            Self::DeadlineExceeded { .. } => "deadline_exceeded",
            Self::Internal => "internal",
            Self::UriTooLong => "uri_too_long",
            Self::CircuitOpen { .. } => "circuit_open",
            Self::Overloaded { .. } => "overloaded",
            Self::RateLimited { .. } => "rate_limited",
            Self::RateLimiterUnavailable => "rate_limiter_unavailable",
            Self::UnsupportedMediaType { .. } => "unsupported_media_type",
            Self::MalformedBody { .. } => "malformed_body",
            Self::InvalidBody { .. } => "invalid_body",
            Self::Refused { code, .. } => code,
            Self::OutcomeUnknown { .. } => "outcome_unknown",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::BadRequest { .. } => "Bad request",
            Self::Unauthenticated { .. } => "Unauthenticated",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::PayloadTooLarge => "Payload too large",
            Self::BadGateway { .. } => "Bad gateway",
            Self::Unavailable { .. } => "Service unavailable",
            Self::NotReady => "Not ready",
            Self::DeadlineExceeded { .. } => "Deadline exceeded",
            Self::Internal => "Internal error",
            Self::UriTooLong => "URI too long",
            Self::CircuitOpen { .. } => "Service unavailable",
            Self::Overloaded { .. } => "Overloaded",
            Self::RateLimited { .. } => "Too many requests",
            Self::RateLimiterUnavailable => "Service unavailable",
            Self::UnsupportedMediaType { .. } => "Unsupported media type",
            Self::MalformedBody { .. } => "Malformed body",
            Self::InvalidBody { .. } => "Invalid body",
            Self::Refused { status, .. } => status.canonical_reason().unwrap_or("Refused"),
            Self::OutcomeUnknown { .. } => "Outcome unknown",
        }
    }

    fn detail(&self) -> Option<String> {
        match self {
            Self::BadRequest { detail } => Some(detail.clone()),
            Self::Unauthenticated { reason } => Some((*reason).to_string()),
            Self::Forbidden => Some("the credential lacks a scope this route requires".into()),
            Self::BadGateway { part } => {
                Some(format!("a required part ({part}) could not be loaded"))
            }
            Self::Unavailable { part } => Some(format!("a required part ({part}) is unavailable")),
            Self::DeadlineExceeded { part: Some(part) } => {
                Some(format!("the time budget ran out while loading {part}"))
            }
            Self::CircuitOpen { part, .. } => Some(format!(
                "a required part ({part}) is failing; not retried before Retry-After"
            )),
            Self::Overloaded { .. } => Some("too many requests in flight; retry later".into()),
            Self::RateLimited { retry_after_s } => Some(format!(
                "rate limit exceeded; retry after {retry_after_s} s"
            )),
            Self::RateLimiterUnavailable => {
                Some("rate limiting is temporarily unavailable; retry shortly".into())
            }
            Self::UnsupportedMediaType { detail } => Some((*detail).to_string()),
            Self::MalformedBody { detail } => Some(detail.clone()),
            Self::InvalidBody { .. } => {
                Some("the body has invalid fields; see errors[].pointer".into())
            }
            Self::Refused { detail, .. } => Some((*detail).to_string()),
            Self::OutcomeUnknown { part } => Some(format!(
                "no answer in time for {part}: it may or may not have been applied; retry with the same Idempotency-Key"
            )),
            _ => None,
        }
    }

    fn part(&self) -> Option<&'static str> {
        match self {
            Self::BadGateway { part } | Self::Unavailable { part } => Some(part),
            Self::DeadlineExceeded { part } => *part,
            Self::CircuitOpen { part, .. } => Some(part),
            Self::Overloaded { part, .. } => *part,
            Self::OutcomeUnknown { part } => Some(part),
            _ => None,
        }
    }

    /// Maps the failure of a required part to what the client is told.
    pub fn from_part(part: &'static str, error: &DownstreamError) -> Self {
        match error.kind {
            DownstreamErrorKind::NotFound => Self::NotFound,
            DownstreamErrorKind::Connect | DownstreamErrorKind::Unavailable => {
                Self::Unavailable { part }
            }
            DownstreamErrorKind::Forbidden => Self::Forbidden,
            DownstreamErrorKind::Timeout | DownstreamErrorKind::Deadline => {
                Self::DeadlineExceeded { part: Some(part) }
            }
            DownstreamErrorKind::Status(_)
            | DownstreamErrorKind::GrpcStatus(_)
            | DownstreamErrorKind::Body
            | DownstreamErrorKind::Decode
            | DownstreamErrorKind::TooLarge => Self::BadGateway { part },
            DownstreamErrorKind::CircuitOpen { retry_after_ms } => Self::CircuitOpen {
                part,
                retry_after_s: retry_after_ms.div_ceil(1000).max(1),
            },
            DownstreamErrorKind::Saturated => Self::Overloaded {
                part: Some(part),
                retry_after_s: 1,
            },
        }
    }

    /// The problem document of this error for the current request.
    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("urn:bff:problem:{}", self.code()),
            title: self.title(),
            status: self.status().as_u16(),
            code: self.code(),
            detail: self.detail(),
            part: self.part(),
            errors: match self {
                Self::InvalidBody { errors } => Some(errors.clone()),
                _ => None,
            },
            request_id: crate::context::current_request_id(),
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URN naming the problem type: `urn:bff:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short human-readable summary of the type.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// Stable machine code, e.g. `deadline_exceeded`.
    pub code: &'static str,
    /// Explanation of this occurrence, when there is something safe to say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The composed part that failed, for 502/503/504.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part: Option<&'static str>,
    /// For `invalid_body` (422): each offending field, by JSON Pointer into the request body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// The request id (also in the `x-request-id` header), for support.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl IntoResponse for BffError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        let body = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match self {
            Self::CircuitOpen { retry_after_s, .. }
            | Self::Overloaded { retry_after_s, .. }
            | Self::RateLimited { retry_after_s } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
            }
            Self::RateLimiterUnavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each failure kind of a required part maps to the status of the contract.
    #[test]
    fn part_failures_map_to_contract_statuses() {
        let e = |kind| DownstreamError::new("users", kind);
        let status = |k| BffError::from_part("profile", &e(k)).status().as_u16();
        assert_eq!(status(DownstreamErrorKind::Connect), 503);
        assert_eq!(status(DownstreamErrorKind::Timeout), 504);
        assert_eq!(status(DownstreamErrorKind::Deadline), 504);
        assert_eq!(status(DownstreamErrorKind::Status(500)), 502);
        assert_eq!(status(DownstreamErrorKind::Decode), 502);
        assert_eq!(status(DownstreamErrorKind::TooLarge), 502);
        assert_eq!(status(DownstreamErrorKind::NotFound), 404);
        assert_eq!(status(DownstreamErrorKind::Saturated), 503);
        assert_eq!(status(DownstreamErrorKind::Unavailable), 503);
        assert_eq!(status(DownstreamErrorKind::Forbidden), 403);
        assert_eq!(status(DownstreamErrorKind::GrpcStatus(13)), 502);
        let open = BffError::from_part(
            "profile",
            &e(DownstreamErrorKind::CircuitOpen {
                retry_after_ms: 4_200,
            }),
        );
        assert_eq!(
            open,
            BffError::CircuitOpen {
                part: "profile",
                retry_after_s: 5
            }
        );
        let response = open.into_response();
        assert_eq!(response.status().as_u16(), 503);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
    }

    /// The body is problem+json with the code, and the downstream name never appears in it.
    #[test]
    fn problem_body_has_code_and_no_downstream_name() {
        let err = BffError::from_part(
            "profile",
            &DownstreamError::new("users-internal", DownstreamErrorKind::Connect),
        );
        let body = serde_json::to_string(&err.problem()).unwrap();
        assert!(
            body.contains("\"code\":\"downstream_unavailable\""),
            "{body}"
        );
        assert!(!body.contains("users-internal"), "{body}");
    }
}
