//! `Idempotency-Key` (IETF draft `draft-ietf-httpapi-idempotency-key-header`) for commands: a client that
//! retries a POST with the same key gets the first answer again instead of a second order.
//!
//! [`Idempotency::run`] wraps a handler's command:
//! 1. **key** — the header, once, as a structured-field string (`"abc"`) or a bare token: 1..=255 visible
//!    ASCII characters. Missing where the route requires it: 400 `idempotency_key_missing`; malformed:
//!    400 `idempotency_key_invalid`. Missing where optional: the command simply runs;
//! 2. **scope** — the record key is `sha256(caller identity, key)`: the same key sent by two callers names
//!    two records, so one caller can neither replay nor block another's;
//! 3. **fingerprint** — `sha256(method, path, the command re-serialised from its typed value)`: whitespace
//!    or field order do not matter, any change of meaning does;
//! 4. **begin** (atomic in the store) — a free key is locked for `lock_ms`; a locked key answers
//!    409 `idempotency_key_in_flight`; a completed key answers its stored answer again, marked with the
//!    header `idempotent-replayed: true` (status, body, `Content-Type`, `Location`) — or 422 `idempotency_key_reused` when the fingerprint differs;
//! 5. **run** — the handler gets the key to forward downstream (`Idempotency-Key: <record key hex>`), so a
//!    service that honours it dedupes a retry whose first attempt did take effect;
//! 6. **end** — what is stored as the final answer, for `ttl_s`: every 2xx and every 4xx except 408 and 429
//!    (the command ran, or was refused, and the same request gets the same answer). **Not stored** (the
//!    lock is released and a retry with the key runs the command again): every 5xx — a downstream failure
//!    (502), unreachable or circuit open (503), deadline or `outcome_unknown` (504), an internal error — and
//!    408/429, and an answer larger than `max_response_bytes`. A request cancelled mid-command (client gone)
//!    releases its lock too. A store that cannot answer within its timeout refuses the command with 503
//!    `idempotency_unavailable`: a command never runs without its key's protection.

pub mod config;
mod store;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use config::IdempotencyConfig;
use store::{Begin, Record, Store, Stored};

use crate::context::RequestContext;
use crate::error::BffError;

/// The request header (lower case).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The response header marking a replayed answer (value `true`).
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// Longest accepted key, in characters.
pub const MAX_KEY_LEN: usize = 255;

/// The idempotency records of one gateway. Cheap to share.
#[derive(Debug)]
pub struct Idempotency {
    store: Arc<Store>,
    prefix: String,
    /// `lock_ms`, converted once.
    lock: Duration,
    /// `ttl_s`, converted once.
    ttl: Duration,
    /// Largest answer kept for replay.
    max_response_bytes: usize,
}

/// Whether a route requires the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRule {
    /// Missing → 400 `idempotency_key_missing`.
    Required,
    /// Missing → the command runs unprotected.
    Optional,
}

/// The header a handler forwards with its command (`Idempotency-Key: <record key hex>`), when the client sent
/// a key.
pub type ForwardedKey = Option<(HeaderName, HeaderValue)>;

impl Idempotency {
    /// The records configured by `config` (nothing is connected yet).
    pub fn new(config: &IdempotencyConfig) -> Result<Self, crate::config::error::ConfigError> {
        let store = Store::new(config).map_err(|_| crate::config::error::ConfigError::Invalid {
            key: "idempotency.redis.url".into(),
            reason: "is not a valid Redis URL".into(),
        })?;
        Ok(Self {
            store: Arc::new(store),
            lock: Duration::from_millis(config.lock_ms),
            ttl: Duration::from_secs(config.ttl_s),
            max_response_bytes: config.max_response_bytes,
            prefix: match config.store {
                crate::ratelimit::config::StoreKind::Redis => config.redis.key_prefix.clone(),
                crate::ratelimit::config::StoreKind::Memory => String::new(),
            },
        })
    }

    /// Runs `command` at most once per key (see the module docs): `request` identifies the request for the
    /// fingerprint (method and path, e.g. `POST /api/orders`), `body` is the typed command.
    pub async fn run<B, F, Fut>(
        &self,
        ctx: &RequestContext,
        headers: &HeaderMap,
        rule: KeyRule,
        request: &str,
        body: &B,
        command: F,
    ) -> Response
    where
        B: Serialize + ?Sized,
        F: FnOnce(ForwardedKey) -> Fut,
        Fut: Future<Output = Response>,
    {
        let key = match parse_key(headers) {
            Ok(Some(key)) => key,
            Ok(None) if rule == KeyRule::Optional => return command(None).await,
            Ok(None) => {
                return refused(
                    StatusCode::BAD_REQUEST,
                    "idempotency_key_missing",
                    "this route requires an Idempotency-Key header",
                );
            }
            Err(()) => {
                return refused(
                    StatusCode::BAD_REQUEST,
                    "idempotency_key_invalid",
                    "Idempotency-Key must be one string of 1..=255 visible ASCII characters",
                );
            }
        };
        let scope = ctx.identity_headers().scope();
        let digest = hex(&sha256(&[scope.as_bytes(), key.as_bytes()]));
        let record_key = format!("{}{digest}", self.prefix);
        let fingerprint = sha256(&[
            request.as_bytes(),
            &serde_json::to_vec(body).unwrap_or_default(),
        ]);
        // Locked at least for the request's remaining budget: the lock never expires under a running command.
        let remaining = ctx
            .deadline()
            .saturating_duration_since(tokio::time::Instant::now());
        let lock = self.lock.max(remaining + Duration::from_secs(1));
        let token = match self.store.begin(&record_key, fingerprint, lock).await {
            Ok(Begin::Started(token)) => token,
            Ok(Begin::Found(Record::InFlight { fingerprint: f, .. })) => {
                return if f == fingerprint {
                    refused(
                        StatusCode::CONFLICT,
                        "idempotency_key_in_flight",
                        "a request with this Idempotency-Key is still being processed; retry later",
                    )
                } else {
                    reused()
                };
            }
            Ok(Begin::Found(Record::Done {
                fingerprint: f,
                answer,
            })) => {
                return if f == fingerprint {
                    tracing::info!("idempotent replay");
                    replay(&answer)
                } else {
                    reused()
                };
            }
            Err(e) => {
                tracing::warn!(error = %e, "idempotency store unavailable; command refused");
                return refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "idempotency_unavailable",
                    "the command cannot be protected against repetition right now; retry shortly",
                );
            }
        };
        let mut lock = LockGuard {
            store: self.store.clone(),
            key: record_key.clone(),
            token,
            armed: true,
        };
        let forwarded = HeaderValue::from_str(&digest)
            .ok()
            .map(|v| (HeaderName::from_static(IDEMPOTENCY_KEY), v));
        let response = command(forwarded).await;
        let status = response.status();
        let last = status.is_success()
            || (status.is_client_error()
                && status != StatusCode::REQUEST_TIMEOUT
                && status != StatusCode::TOO_MANY_REQUESTS);
        if !last {
            return response; // the guard releases the key
        }
        let (parts, body) = response.into_parts();
        // Handlers answer from memory (a composed JSON view), so reading the body costs no waiting.
        let bytes = match axum::body::to_bytes(body, usize::MAX).await {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(error = %e, "answer unreadable; key released");
                return BffError::Internal.into_response();
            }
        };
        if bytes.len() > self.max_response_bytes {
            tracing::warn!(
                bytes = bytes.len(),
                "answer too large to keep for replay; key released"
            );
            return Response::from_parts(parts, axum::body::Body::from(bytes));
        }
        let answer = Stored {
            status: status.as_u16(),
            content_type: parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            location: parts
                .headers
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: bytes.clone(),
        };
        match self
            .store
            .complete(&record_key, token, fingerprint, answer, self.ttl)
            .await
        {
            Ok(()) => lock.armed = false,
            Err(e) => tracing::warn!(error = %e, "answer not kept for replay; key released"),
        }
        Response::from_parts(parts, axum::body::Body::from(bytes))
    }
}

/// Releases the lock of a command that did not complete (failed, cancelled, not kept).
struct LockGuard {
    store: Arc<Store>,
    key: String,
    token: u64,
    armed: bool,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (store, key, token) = (
            self.store.clone(),
            std::mem::take(&mut self.key),
            self.token,
        );
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = store.release(&key, token).await {
                    tracing::warn!(error = %e, "idempotency lock not released; it expires by itself");
                }
            });
        }
    }
}

/// The key of the request: `Ok(None)` when absent, `Err` when malformed (empty, too long, not visible ASCII,
/// an unterminated quoted string, or sent twice).
fn parse_key(headers: &HeaderMap) -> Result<Option<String>, ()> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(());
    }
    let text = value.to_str().map_err(|_| ())?.trim();
    let key = match text.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"').ok_or(())?,
        None => text,
    };
    let valid = (1..=MAX_KEY_LEN).contains(&key.len())
        && key
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
    if valid {
        Ok(Some(key.to_owned()))
    } else {
        Err(())
    }
}

fn refused(status: StatusCode, code: &'static str, detail: &'static str) -> Response {
    BffError::Refused {
        status,
        code,
        detail,
    }
    .into_response()
}

fn reused() -> Response {
    refused(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "this Idempotency-Key was used for a different request",
    )
}

/// The stored answer, marked as replayed.
fn replay(answer: &Stored) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, answer.body.clone()).into_response();
    let headers = response.headers_mut();
    if let Some(ct) = answer
        .content_type
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        headers.insert(header::CONTENT_TYPE, ct);
    }
    if let Some(location) = answer
        .location
        .as_deref()
        .and_then(|l| HeaderValue::from_str(l).ok())
    {
        headers.insert(header::LOCATION, location);
    }
    headers.insert(
        HeaderName::from_static(REPLAYED_HEADER),
        HeaderValue::from_static("true"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(values: &[&str]) -> Result<Option<String>, ()> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(IDEMPOTENCY_KEY, HeaderValue::from_str(v).unwrap());
        }
        parse_key(&headers)
    }

    /// Keys: structured-field strings or bare tokens, 1..=255 visible characters, once.
    #[test]
    fn keys_are_parsed_strictly() {
        assert_eq!(key(&[]), Ok(None));
        assert_eq!(key(&["\"abc-1\""]), Ok(Some("abc-1".into())));
        assert_eq!(key(&["abc-1"]), Ok(Some("abc-1".into())));
        for bad in ["", "\"\"", "\"abc", "a\"b", &"x".repeat(256)] {
            assert_eq!(key(&[bad]), Err(()), "{bad:?}");
        }
        assert_eq!(key(&["a", "b"]), Err(()));
    }
}
