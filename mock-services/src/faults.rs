//! Fault injection: the rule model ([`FaultRule`], [`FaultKind`]), the shared rule list ([`Faults`]) and
//! the middleware that applies them to every non-admin route.
//!
//! A rule matches a request when the path starts with its `path_prefix` (or it has none) and a fresh
//! `fastrand` roll is below its `rate`. Matching `latency` rules are applied and evaluation continues;
//! the first matching rule of any other kind decides the response.

use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::stream;
use serde::{Deserialize, Serialize};

use crate::state::Shutdown;

/// The leaky body of an injected error: gateways must never pass it on to clients.
pub const INJECTED_ERROR_BODY: &str =
    r#"{"error":"injected","detail":"internal stack trace at db.rs:42 host db-7.internal:5432"}"#;

/// The truncated body sent by [`FaultKind::MalformedJson`].
pub const MALFORMED_BODY: &str = r#"{"id": "1", "name": "#;

/// Default size of an [`FaultKind::Oversized`] body: 20 MiB.
pub const DEFAULT_OVERSIZED_BYTES: usize = 20 * 1024 * 1024;

/// One fault rule, e.g. `{"kind":"latency","ms":300,"jitter_ms":0,"path_prefix":"/users","rate":1.0}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    /// What the fault does (serialized flat, with a `kind` tag).
    #[serde(flatten)]
    pub kind: FaultKind,
    /// Only requests whose path starts with this prefix are affected; `None` = all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Probability in `0.0..=1.0` that a matching request is affected (default 1.0).
    #[serde(default = "default_rate")]
    pub rate: f64,
}

fn default_rate() -> f64 {
    1.0
}

/// The kinds of fault, tagged by `kind` in snake case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Delay the answer by `ms` plus a uniform `0..=jitter_ms`; combines with later rules.
    Latency {
        /// Fixed delay in milliseconds.
        ms: u64,
        /// Maximum extra random delay in milliseconds.
        #[serde(default)]
        jitter_ms: u64,
    },
    /// Answer with `status` and [`INJECTED_ERROR_BODY`].
    Error {
        /// HTTP status code (default 500).
        #[serde(default = "default_status")]
        status: u16,
    },
    /// Abort the connection without a complete HTTP response.
    Reset,
    /// Never answer (until the service shuts down).
    Hang,
    /// 200 with `content-type: application/json` and the truncated [`MALFORMED_BODY`].
    MalformedJson,
    /// The real response, its body streamed `bytes_per_chunk` bytes every `interval_ms`.
    SlowDrip {
        /// Bytes per chunk (default 16, at least 1).
        #[serde(default = "default_chunk")]
        bytes_per_chunk: usize,
        /// Pause between chunks in milliseconds (default 100).
        #[serde(default = "default_interval")]
        interval_ms: u64,
    },
    /// The real response (valid JSON) served with another `Content-Type` (default `text/html`).
    WrongContentType {
        /// The media type sent instead.
        #[serde(default = "default_wrong_content_type")]
        content_type: String,
    },
    /// 200 with a valid JSON body `{"padding":"xxx..."}` of exactly `bytes` bytes (streamed).
    Oversized {
        /// Body size in bytes (default 20 MiB).
        #[serde(default = "default_oversized")]
        bytes: usize,
    },
}

fn default_status() -> u16 {
    500
}
fn default_chunk() -> usize {
    16
}
fn default_interval() -> u64 {
    100
}
fn default_wrong_content_type() -> String {
    "text/html".into()
}
fn default_oversized() -> usize {
    DEFAULT_OVERSIZED_BYTES
}

impl FaultRule {
    /// A rule of this kind for all paths, always firing.
    pub fn new(kind: FaultKind) -> Self {
        FaultRule {
            kind,
            path_prefix: None,
            rate: 1.0,
        }
    }

    /// Restricts the rule to paths starting with `prefix`.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix = Some(prefix.into());
        self
    }

    /// Sets the firing probability.
    pub fn with_rate(mut self, rate: f64) -> Self {
        self.rate = rate;
        self
    }

    /// Checks the rule's parameters: `rate` in `0..=1`, a valid error status.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.rate) {
            return Err(format!("rate must be within 0.0..=1.0, got {}", self.rate));
        }
        if let FaultKind::Error { status } = self.kind
            && !(100..=599).contains(&status)
        {
            return Err(format!("invalid status {status}"));
        }
        Ok(())
    }

    fn matches(&self, path: &str) -> bool {
        self.path_prefix
            .as_deref()
            .is_none_or(|p| path.starts_with(p))
            && fastrand::f64() < self.rate
    }
}

/// The fault rules of one service, shared between its middleware, admin API and [`crate::MockHandle`].
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<RwLock<Vec<FaultRule>>>);

impl Faults {
    /// A rule list with these initial rules.
    pub fn new(rules: Vec<FaultRule>) -> Self {
        Faults(Arc::new(RwLock::new(rules)))
    }

    /// The current rules.
    pub fn list(&self) -> Vec<FaultRule> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces all rules.
    pub fn set(&self, rules: Vec<FaultRule>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = rules;
    }

    /// Appends one rule.
    pub fn push(&self, rule: FaultRule) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).push(rule);
    }

    /// Removes all rules.
    pub fn clear(&self) {
        self.set(Vec::new());
    }

    /// Rolls the rules for `path`: the total latency to apply and the deciding non-latency fault.
    pub(crate) fn roll(&self, path: &str) -> (Duration, Option<FaultKind>) {
        let rules = self.0.read().unwrap_or_else(|e| e.into_inner());
        let mut delay = Duration::ZERO;
        for rule in rules.iter().filter(|r| r.matches(path)) {
            match &rule.kind {
                FaultKind::Latency { ms, jitter_ms } => {
                    let jitter = if *jitter_ms > 0 {
                        fastrand::u64(0..=*jitter_ms)
                    } else {
                        0
                    };
                    delay = delay.saturating_add(Duration::from_millis(ms.saturating_add(jitter)));
                }
                other => return (delay, Some(other.clone())),
            }
        }
        (delay, None)
    }
}

/// Middleware state: the rules and the shutdown signal that ends hanging and dripping responses.
#[derive(Clone)]
pub(crate) struct FaultLayerState {
    pub(crate) faults: Faults,
    pub(crate) shutdown: Shutdown,
}

/// Applies the fault rules to a request.
pub(crate) async fn fault_middleware(
    State(state): State<FaultLayerState>,
    req: Request,
    next: Next,
) -> Response {
    let (delay, fault) = state.faults.roll(req.uri().path());
    if !delay.is_zero() {
        let mut shutdown = state.shutdown.clone();
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.wait() => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
        }
    }
    let Some(fault) = fault else {
        return next.run(req).await;
    };
    match fault {
        FaultKind::Latency { .. } => next.run(req).await,
        FaultKind::Error { status } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            json_response(status, Body::from(INJECTED_ERROR_BODY))
        }
        FaultKind::Reset => {
            let body = stream::once(async {
                Err::<Bytes, _>(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "injected reset",
                ))
            });
            json_response(StatusCode::OK, Body::from_stream(body))
        }
        FaultKind::Hang => {
            let mut shutdown = state.shutdown.clone();
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(24 * 3600)) => {}
                () = shutdown.wait() => {}
            }
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
        FaultKind::MalformedJson => json_response(StatusCode::OK, Body::from(MALFORMED_BODY)),
        FaultKind::SlowDrip {
            bytes_per_chunk,
            interval_ms,
        } => {
            let response = next.run(req).await;
            let (mut parts, body) = response.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, 256 * 1024 * 1024).await else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            parts.headers.remove(header::CONTENT_LENGTH);
            let body = drip(
                bytes,
                bytes_per_chunk.max(1),
                Duration::from_millis(interval_ms),
                state.shutdown,
            );
            Response::from_parts(parts, body)
        }
        FaultKind::Oversized { bytes } => json_response(StatusCode::OK, oversized_body(bytes)),
        FaultKind::WrongContentType { content_type } => {
            let mut response = next.run(req).await;
            if let Ok(value) = HeaderValue::from_str(&content_type) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            response
        }
    }
}

fn json_response(status: StatusCode, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Streams `bytes` in chunks with a pause before every chunk but the first; ends early on shutdown.
fn drip(bytes: Bytes, chunk: usize, interval: Duration, shutdown: Shutdown) -> Body {
    let s = stream::unfold(
        (bytes, 0usize, shutdown),
        move |(bytes, offset, mut shutdown)| async move {
            if offset >= bytes.len() {
                return None;
            }
            if offset > 0 {
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    () = shutdown.wait() => return None,
                }
            }
            let end = offset.saturating_add(chunk).min(bytes.len());
            let piece = bytes.slice(offset..end);
            Some((Ok::<_, Infallible>(piece), (bytes, end, shutdown)))
        },
    );
    Body::from_stream(s)
}

/// A valid JSON document of exactly `total` bytes (at least the 14 bytes of `{"padding":""}`), streamed
/// in 64 KiB chunks.
fn oversized_body(total: usize) -> Body {
    const PREFIX: &[u8] = br#"{"padding":""#;
    const SUFFIX: &[u8] = br#""}"#;
    const CHUNK: usize = 64 * 1024;
    let padding = total.saturating_sub(PREFIX.len() + SUFFIX.len());
    let filler = Bytes::from(vec![b'x'; CHUNK]);
    let middle = (0..padding.div_ceil(CHUNK)).map(move |i| {
        let len = CHUNK.min(padding - i * CHUNK);
        filler.slice(..len)
    });
    let chunks = std::iter::once(Bytes::from_static(PREFIX))
        .chain(middle)
        .chain(std::iter::once(Bytes::from_static(SUFFIX)))
        .map(Ok::<_, Infallible>);
    Body::from_stream(stream::iter(chunks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_serialize_flat() {
        let rule = FaultRule::new(FaultKind::Latency {
            ms: 300,
            jitter_ms: 0,
        })
        .with_prefix("/users");
        let json = serde_json::to_value(&rule).expect("serialize");
        assert_eq!(
            json,
            serde_json::json!({"kind":"latency","ms":300,"jitter_ms":0,"path_prefix":"/users","rate":1.0})
        );
        let back: FaultRule =
            serde_json::from_str(r#"{"kind":"latency","ms":300,"path_prefix":"/users"}"#)
                .expect("parse");
        assert_eq!(back, rule);
        let e: FaultRule =
            serde_json::from_str(r#"{"kind":"error","status":503,"rate":1}"#).expect("parse");
        assert_eq!(e.kind, FaultKind::Error { status: 503 });
        let o: FaultRule = serde_json::from_str(r#"{"kind":"oversized"}"#).expect("parse");
        assert_eq!(
            o.kind,
            FaultKind::Oversized {
                bytes: DEFAULT_OVERSIZED_BYTES
            }
        );
        assert!(serde_json::from_str::<FaultRule>(r#"{"kind":"nope"}"#).is_err());
        assert!(
            FaultRule::new(FaultKind::Reset)
                .with_rate(1.5)
                .validate()
                .is_err()
        );
        assert!(
            FaultRule::new(FaultKind::Error { status: 42 })
                .validate()
                .is_err()
        );
    }

    #[test]
    fn rate_zero_never_matches() {
        let faults = Faults::new(vec![FaultRule::new(FaultKind::Reset).with_rate(0.0)]);
        for _ in 0..1000 {
            assert_eq!(faults.roll("/x").1, None);
        }
    }
}
