//! gRPC over the pooled HTTP/2 client (layer 6 of the call stack for a `protocol = "grpc"` downstream): a
//! unary call is a POST of one length-prefixed protobuf message to `/package.Service/Method`, with the
//! remaining budget in `grpc-timeout`, the request id, `traceparent` and the identity headers as metadata; the
//! answer is one message and a `grpc-status` trailer (or a trailers-only answer). The framing is done here
//! rather than by a tonic client so that every attempt passes the same stack as an HTTP call (retry budget,
//! breaker, bulkhead, balancing) instead of tonic's own channel and balancer.
//!
//! Status mapping (the status message is logged, never sent to a client): `NOT_FOUND` → 404,
//! `UNAVAILABLE` → 503 (retried for idempotent methods), `DEADLINE_EXCEEDED` → 504, `PERMISSION_DENIED` →
//! 403, any other → 502. A message over `max_response_bytes` (judged by its length prefix, before it is
//! read), a compressed or malformed message, or an answer without a status is a bad answer (502).

use axum::http::header::{CONTENT_TYPE, HeaderMap, HeaderValue, TE};
use axum::http::{HeaderName, StatusCode};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body_util::BodyExt;

use super::client::HttpClient;
use super::request::{Answer, CallRequest};
use super::transport::{Budget, build_request, error_chain, unanswered};
use super::{DownstreamError, DownstreamErrorKind};
use crate::resilience::balance::Instance;

/// A gRPC method a gateway calls: its path and whether repeating it is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcMethod {
    /// `/package.Service/Method`, e.g. `/shop.inventory.Inventory/GetStock`.
    pub path: &'static str,
    /// Whether the call may be repeated (retried on `UNAVAILABLE`, hedged) without changing anything.
    pub idempotent: bool,
}

impl GrpcMethod {
    /// An idempotent method (a read): retried and hedged like a GET.
    pub const fn idempotent(path: &'static str) -> Self {
        Self {
            path,
            idempotent: true,
        }
    }

    /// A method with effects: one attempt, never retried nor hedged.
    pub const fn once(path: &'static str) -> Self {
        Self {
            path,
            idempotent: false,
        }
    }
}

/// The gRPC status codes the mapping names.
pub(crate) mod code {
    /// Success.
    pub(crate) const OK: u32 = 0;
    /// The caller-visible "unknown" error (also what a proxy's unexpected HTTP status means).
    pub(crate) const UNKNOWN: u32 = 2;
    /// The deadline passed on the server.
    pub(crate) const DEADLINE_EXCEEDED: u32 = 4;
    /// No such entity.
    pub(crate) const NOT_FOUND: u32 = 5;
    /// The caller may not do this.
    pub(crate) const PERMISSION_DENIED: u32 = 7;
    /// Quota or memory exhausted.
    pub(crate) const RESOURCE_EXHAUSTED: u32 = 8;
    /// A server bug.
    pub(crate) const INTERNAL: u32 = 13;
    /// The service is briefly unavailable; safe to retry.
    pub(crate) const UNAVAILABLE: u32 = 14;
    /// Unrecoverable data loss.
    pub(crate) const DATA_LOSS: u32 = 15;
}

/// The `grpc-status` header / trailer.
const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// The `grpc-message` header / trailer (logged only).
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// The `grpc-timeout` request header.
const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
/// Length of a message's prefix: compressed flag (1 byte), length (4 bytes, big endian).
const PREFIX: usize = 5;

/// The gRPC transport of one downstream: its HTTP/2 pool and the largest message it accepts.
#[derive(Debug)]
pub(crate) struct GrpcTransport {
    /// The pooled client (HTTP/2 only).
    pub(crate) client: HttpClient,
    /// Largest accepted response message, in bytes.
    pub(crate) max_bytes: usize,
}

/// `message` with its gRPC prefix (uncompressed).
pub(crate) fn frame(message: &impl prost::Message) -> Bytes {
    let len = message.encoded_len();
    let mut buf = BytesMut::with_capacity(PREFIX + len);
    buf.put_u8(0);
    buf.put_u32(len as u32);
    // Encoding into a buffer of sufficient capacity cannot fail.
    let _ = message.encode(&mut buf);
    buf.freeze()
}

/// The `grpc-timeout` value of `ms` milliseconds (at most 8 digits, then seconds, then hours).
fn timeout_value(ms: u64) -> HeaderValue {
    let text = if ms < 100_000_000 {
        format!("{ms}m")
    } else if ms / 1000 < 100_000_000 {
        format!("{}S", ms / 1000)
    } else {
        "99999999H".to_owned()
    };
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("1m"))
}

/// Whether a gRPC status says the server failed (counted against its breaker and health): `UNKNOWN`,
/// `RESOURCE_EXHAUSTED`, `INTERNAL`, `DATA_LOSS`. Other statuses are answers about the request.
pub(crate) fn is_server_fault(status: u32) -> bool {
    matches!(
        status,
        code::UNKNOWN | code::RESOURCE_EXHAUSTED | code::INTERNAL | code::DATA_LOSS
    )
}

/// The failure a non-`OK` gRPC status is.
pub(crate) fn status_kind(status: u32) -> DownstreamErrorKind {
    match status {
        code::NOT_FOUND => DownstreamErrorKind::NotFound,
        code::UNAVAILABLE => DownstreamErrorKind::Unavailable,
        code::DEADLINE_EXCEEDED => DownstreamErrorKind::Timeout,
        code::PERMISSION_DENIED => DownstreamErrorKind::Forbidden,
        other => DownstreamErrorKind::GrpcStatus(other),
    }
}

/// The failure of an answer whose HTTP status is not 200 (a proxy's, per the gRPC HTTP mapping: 429, 502,
/// 503 and 504 are `UNAVAILABLE`, 403 `PERMISSION_DENIED`; anything else a bad answer).
fn http_status_kind(status: StatusCode) -> DownstreamErrorKind {
    match status.as_u16() {
        429 | 502..=504 => DownstreamErrorKind::Unavailable,
        403 => DownstreamErrorKind::Forbidden,
        other => DownstreamErrorKind::Status(other),
    }
}

/// The `grpc-status` of `headers`, if present (an unparsable one is `UNKNOWN`).
fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers.get(GRPC_STATUS).map(|v| {
        v.to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(code::UNKNOWN)
    })
}

impl GrpcTransport {
    /// Sends the gRPC call `req` (its body already framed by [`frame`]) to `instance` and returns the one
    /// response message, unframed, as the answer's body.
    pub(crate) async fn send(
        &self,
        name: &str,
        req: &CallRequest,
        instance: &Instance,
        budget: Budget,
        span: Option<u64>,
    ) -> Result<Answer, DownstreamError> {
        let err = |kind| DownstreamError::new(name, kind);
        let mut request = build_request(
            name,
            req,
            instance,
            &instance.base,
            budget,
            span,
            "application/grpc",
        )?;
        let remaining_ms = budget.remaining_ms();
        stream_headers(request.headers_mut());
        request
            .headers_mut()
            .insert(GRPC_TIMEOUT, timeout_value(remaining_ms));
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| unanswered(name, &e))?;
        let (parts, mut body) = response.into_parts();
        if parts.status != StatusCode::OK {
            tracing::warn!(downstream = %name, status = parts.status.as_u16(), "gRPC answer with an HTTP error status");
            return Err(err(http_status_kind(parts.status)));
        }
        // A trailers-only answer: the status is in the headers, there is no message.
        if let Some(status) = grpc_status(&parts.headers) {
            return Err(err(failed(name, status, &parts.headers)));
        }
        let grpc_media = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"));
        if !grpc_media {
            tracing::warn!(downstream = %name, content_type = ?parts.headers.get(CONTENT_TYPE), "not a gRPC answer");
            return Err(err(DownstreamErrorKind::Decode));
        }
        let mut message = BytesMut::new();
        let mut trailers = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                tracing::warn!(downstream = %name, cause = %error_chain(&e), "gRPC answer broke off");
                err(DownstreamErrorKind::Body)
            })?;
            match frame.into_data() {
                Ok(chunk) => {
                    message.extend_from_slice(&chunk);
                    // The length prefix tells an oversized message before it is read.
                    if message.len() >= PREFIX {
                        let declared =
                            u32::from_be_bytes([message[1], message[2], message[3], message[4]]);
                        if declared as usize > self.max_bytes {
                            return Err(err(DownstreamErrorKind::TooLarge));
                        }
                        if message.len() > PREFIX + declared as usize {
                            // A unary answer holds one message.
                            tracing::warn!(downstream = %name, "more than one message in a unary answer");
                            return Err(err(DownstreamErrorKind::Decode));
                        }
                    }
                }
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        trailers = Some(t);
                    }
                }
            }
        }
        let Some(status) = trailers.as_ref().and_then(grpc_status) else {
            tracing::warn!(downstream = %name, "gRPC answer ended without a status");
            return Err(err(DownstreamErrorKind::Body));
        };
        if status != code::OK {
            return Err(err(failed(
                name,
                status,
                trailers.as_ref().unwrap_or(&parts.headers),
            )));
        }
        unframe(name, message).map(|body| Answer {
            status: StatusCode::OK,
            body,
            cache_control: None,
            etag: None,
        })
    }
}

/// The headers every gRPC request adds to those of `build_request`: the media type and `te: trailers`.
pub(crate) fn stream_headers(headers: &mut HeaderMap) {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(TE, HeaderValue::from_static("trailers"));
}

/// Whether the head of an opened gRPC stream lets its messages follow: HTTP 200, a gRPC media type, and no
/// status yet (a trailers-only answer is the call's failure).
pub(crate) fn check_opened(
    response: &axum::http::Response<hyper::body::Incoming>,
) -> Result<(), DownstreamErrorKind> {
    if response.status() != StatusCode::OK {
        return Err(http_status_kind(response.status()));
    }
    if let Some(status) = grpc_status(response.headers()) {
        return Err(if status == code::OK {
            DownstreamErrorKind::Decode
        } else {
            failed("stream", status, response.headers())
        });
    }
    let grpc_media = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if grpc_media {
        Ok(())
    } else {
        Err(DownstreamErrorKind::Decode)
    }
}

/// Takes one complete message off the front of `buf`: `None` until it is complete; an error for one over
/// `max_bytes` (judged by its prefix) or a compressed one.
pub(crate) fn split_message(
    buf: &mut BytesMut,
    max_bytes: usize,
) -> Result<Option<Bytes>, DownstreamErrorKind> {
    if buf.len() < PREFIX {
        return Ok(None);
    }
    let declared = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if declared > max_bytes {
        return Err(DownstreamErrorKind::TooLarge);
    }
    if buf[0] != 0 {
        return Err(DownstreamErrorKind::Decode);
    }
    if buf.len() < PREFIX + declared {
        return Ok(None);
    }
    buf.advance(PREFIX);
    Ok(Some(buf.split_to(declared).freeze()))
}

/// How a stream's trailers end it: `None` for `OK` (the stream is over), else the failure of its status
/// (a missing status is a broken answer).
pub(crate) fn stream_end(name: &str, trailers: &HeaderMap) -> Option<DownstreamErrorKind> {
    match grpc_status(trailers) {
        Some(code::OK) => None,
        Some(status) => Some(failed(name, status, trailers)),
        None => Some(DownstreamErrorKind::Body),
    }
}

/// Logs a failed call's status and message (never sent to a client) and returns its failure.
fn failed(name: &str, status: u32, headers: &HeaderMap) -> DownstreamErrorKind {
    let message = headers.get(GRPC_MESSAGE).map(|v| {
        String::from_utf8_lossy(v.as_bytes())
            .chars()
            .take(200)
            .collect::<String>()
    });
    tracing::warn!(downstream = %name, grpc_status = status, grpc_message = ?message, "gRPC call failed");
    status_kind(status)
}

/// The one uncompressed message of a unary answer.
fn unframe(name: &str, mut buf: BytesMut) -> Result<Bytes, DownstreamError> {
    let bad = |what: &str| {
        tracing::warn!(downstream = %name, "{what}");
        DownstreamError::new(name, DownstreamErrorKind::Decode)
    };
    if buf.len() < PREFIX {
        return Err(bad("gRPC answer without a message"));
    }
    if buf[0] != 0 {
        return Err(bad("compressed gRPC message (no compression was offered)"));
    }
    let declared = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    buf.advance(PREFIX);
    if buf.len() != declared {
        return Err(bad("gRPC message shorter than its length prefix"));
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Statuses map to the problem kinds of the issue; the timeout fits the 8 digits the protocol allows.
    #[test]
    fn status_mapping_and_timeout() {
        assert_eq!(status_kind(5), DownstreamErrorKind::NotFound);
        assert_eq!(status_kind(14), DownstreamErrorKind::Unavailable);
        assert_eq!(status_kind(4), DownstreamErrorKind::Timeout);
        assert_eq!(status_kind(7), DownstreamErrorKind::Forbidden);
        assert_eq!(status_kind(13), DownstreamErrorKind::GrpcStatus(13));
        assert_eq!(
            http_status_kind(StatusCode::SERVICE_UNAVAILABLE),
            DownstreamErrorKind::Unavailable
        );
        assert_eq!(timeout_value(1500), "1500m");
        assert_eq!(timeout_value(100_000_000), "100000S");
    }

    /// A stream's messages are taken off the buffer one by one as they complete; an oversized one is refused
    /// by its prefix alone; the trailers end the stream with `OK`, a status, or a broken answer.
    #[test]
    fn stream_messages_and_end() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&frame(&"one".to_owned()));
        let second = frame(&"two".to_owned());
        buf.extend_from_slice(&second[..4]);
        let first = split_message(&mut buf, 1024)
            .expect("ok")
            .expect("complete");
        assert_eq!(
            <String as prost::Message>::decode(first).expect("decode"),
            "one"
        );
        assert_eq!(split_message(&mut buf, 1024), Ok(None), "incomplete");
        buf.extend_from_slice(&second[4..]);
        assert!(split_message(&mut buf, 1024).expect("ok").is_some());
        let mut big = BytesMut::from(&[0u8, 0, 1, 0, 0][..]);
        assert_eq!(
            split_message(&mut big, 1024),
            Err(DownstreamErrorKind::TooLarge)
        );
        let mut trailers = HeaderMap::new();
        assert_eq!(stream_end("x", &trailers), Some(DownstreamErrorKind::Body));
        trailers.insert(GRPC_STATUS, HeaderValue::from_static("0"));
        assert_eq!(stream_end("x", &trailers), None);
        trailers.insert(GRPC_STATUS, HeaderValue::from_static("14"));
        assert_eq!(
            stream_end("x", &trailers),
            Some(DownstreamErrorKind::Unavailable)
        );
    }

    /// A message round-trips through its frame; a short or compressed one is refused.
    #[test]
    fn framing() {
        let framed = frame(&"hello".to_owned());
        assert_eq!(&framed[..5], &[0, 0, 0, 0, 7]);
        let body = unframe("x", BytesMut::from(&framed[..])).expect("one message");
        assert_eq!(
            <String as prost::Message>::decode(body).expect("decode"),
            "hello"
        );
        assert!(unframe("x", BytesMut::from(&framed[..6])).is_err());
        let mut compressed = BytesMut::from(&framed[..]);
        compressed[0] = 1;
        assert!(unframe("x", compressed).is_err());
    }
}
