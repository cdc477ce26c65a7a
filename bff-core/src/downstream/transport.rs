//! Layer 6 of the call stack, the transport: one request of a [`CallRequest`] to one chosen instance, and its
//! answer read with a size cap. The seam where protocols plug in: HTTP/1.1 and HTTP/2 (ALPN or prior
//! knowledge), plain or TLS, over the pooled hyper-util client; plain HTTP/1.1 over the lean pool of each
//! instance (`h1pool.rs`); gRPC over the hyper-util client (`grpc.rs`).

use std::sync::Arc;

use axum::http::header::{
    ACCEPT, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, HOST, HeaderValue,
};
use axum::http::{HeaderMap, HeaderName, Request, StatusCode, Uri};
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use tokio::time::Instant;

use super::client::HttpClient;
use super::grpc::GrpcTransport;
use super::h1pool::{H1Pool, PoolError};
use super::request::{Answer, CallRequest};
use super::{DownstreamError, DownstreamErrorKind};
use crate::resilience::DEADLINE_HEADER;
use crate::resilience::balance::Instance;
use crate::trace::{REQUEST_ID, TRACEPARENT};

/// How a downstream's calls travel.
#[derive(Debug)]
pub(crate) enum Transport {
    /// HTTP/1.1 or HTTP/2, plain or TLS, over one connection pool.
    Http(HttpTransport),
    /// gRPC: one protobuf message each way over an HTTP/2 connection pool.
    Grpc(GrpcTransport),
}

/// The HTTP transport of one downstream: its pool and what it accepts as an answer.
#[derive(Debug)]
pub(crate) struct HttpTransport {
    /// The pooled client (TLS, HTTP/2).
    pub(crate) client: HttpClient,
    /// The lean HTTP/1.1 pool of each instance (by index) that is plain `http://` and not HTTP/2-only;
    /// `None` for the others, which use `client`.
    pub(crate) lean: Vec<Option<Arc<H1Pool>>>,
    /// Response body cap in bytes.
    pub(crate) max_bytes: usize,
    /// Accepted media types of a successful answer (lower case); empty = any.
    pub(crate) content_types: Vec<String>,
}

impl Transport {
    /// The HTTP client (health checks and reachability probes use it directly).
    pub(crate) fn http_client(&self) -> &HttpClient {
        match self {
            Self::Http(http) => &http.client,
            Self::Grpc(grpc) => &grpc.client,
        }
    }

    /// Sends `req` to `instance` of the downstream `name`: the request is built from scratch (request id,
    /// `traceparent` naming the attempt `span` when traced, the remaining time of `budget` in
    /// `x-bff-deadline-ms`, the identity headers rendered for the request, the call's extra headers); the
    /// answer is checked (status, media type, size) and read.
    pub(crate) async fn send(
        &self,
        name: &str,
        req: &CallRequest,
        (i, instance): (usize, &Instance),
        budget: Budget,
        span: Option<u64>,
    ) -> Result<Answer, DownstreamError> {
        match self {
            Self::Http(http) => http.send(name, req, (i, instance), budget, span).await,
            Self::Grpc(grpc) => grpc.send(name, req, instance, budget, span).await,
        }
    }
}

/// The time an attempt has: when it was sent (the clock as its caller read it) and when its answer must have
/// come. The remaining time a downstream is told is the difference, so building the request reads no clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// When the attempt started.
    pub(crate) sent: Instant,
    /// When its answer must have come: min(per-call timeout, the request's deadline).
    pub(crate) deadline: Instant,
}

impl Budget {
    /// A budget until `deadline`, starting now.
    pub(crate) fn until(deadline: Instant) -> Self {
        Self {
            sent: Instant::now(),
            deadline,
        }
    }

    /// The remaining time in whole milliseconds, at least 1.
    pub(crate) fn remaining_ms(self) -> u64 {
        let remaining = self.deadline.saturating_duration_since(self.sent);
        u64::try_from(remaining.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

impl HttpTransport {
    async fn send(
        &self,
        name: &str,
        req: &CallRequest,
        (i, instance): (usize, &Instance),
        budget: Budget,
        span: Option<u64>,
    ) -> Result<Answer, DownstreamError> {
        let err = |kind| DownstreamError::new(name, kind);
        let json = "application/json";
        let (response, mut lease) = match self.lean.get(i).and_then(Option::as_ref) {
            Some(pool) => {
                let request =
                    build_request(name, req, instance, pool.prefix(), budget, span, json)?;
                // Boxed (as hyper-util's response future is): inline, the exchange's state would be
                // copied with every enclosing future of the call stack (measured: +8k instructions).
                let (response, lease) = Box::pin(pool.send(request))
                    .await
                    .map_err(|e| pool_unanswered(name, e))?;
                (response, Some(lease))
            }
            None => {
                let request =
                    build_request(name, req, instance, &instance.base, budget, span, json)?;
                let response = self
                    .client
                    .request(request)
                    .await
                    .map_err(|e| unanswered(name, &e))?;
                (response, None)
            }
        };
        let status = response.status();
        // A command's 4xx is its answer (a refusal the handler maps for the client), not a failure.
        let refusal = status.is_client_error() && !req.method.is_safe();
        if status == StatusCode::NOT_FOUND && !refusal {
            return Err(err(DownstreamErrorKind::NotFound));
        }
        if !status.is_success() && !refusal {
            return Err(err(DownstreamErrorKind::Status(status.as_u16())));
        }
        if !self.content_types.is_empty()
            && status != StatusCode::NO_CONTENT
            && !media_type_allowed(response.headers().get(CONTENT_TYPE), &self.content_types)
        {
            tracing::warn!(
                downstream = %name,
                content_type = ?response.headers().get(CONTENT_TYPE),
                "answer of an unexpected content type"
            );
            return Err(err(DownstreamErrorKind::Decode));
        }
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.max_bytes as u64) {
            return Err(err(DownstreamErrorKind::TooLarge));
        }
        let cache_control = response
            .headers()
            .get(CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let etag = if req.keep_tag {
            response.headers().get(ETAG).cloned()
        } else {
            None
        };
        // The usual small answer arrives as one frame and is returned without a copy.
        let mut incoming = response.into_body();
        let mut first: Option<Bytes> = None;
        let mut rest = BytesMut::new();
        let mut total = 0usize;
        loop {
            let frame = match &mut lease {
                // The lean pool's connection is driven by this call while its body is read.
                Some(lease) => lease.frame(&mut incoming).await,
                None => incoming.frame().await,
            };
            let Some(frame) = frame else {
                break;
            };
            let frame = frame.map_err(|e| {
                tracing::debug!(error = %e, "body read failed");
                err(DownstreamErrorKind::Body)
            })?;
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            total += chunk.len();
            if total > self.max_bytes {
                return Err(err(DownstreamErrorKind::TooLarge));
            }
            match &first {
                None if rest.is_empty() => first = Some(chunk),
                _ => {
                    if let Some(f) = first.take() {
                        rest.extend_from_slice(&f);
                    }
                    rest.extend_from_slice(&chunk);
                }
            }
        }
        let body = match first {
            Some(only) => only,
            None => rest.freeze(),
        };
        // Read to its end: the connection can carry the next call.
        if let Some(lease) = lease {
            lease.release();
        }
        tracing::debug!(
            status = status.as_u16(),
            bytes = body.len(),
            "downstream answered"
        );
        Ok(Answer {
            status,
            body,
            cache_control,
            etag,
        })
    }
}

/// The request of one attempt to `instance`, built from scratch: its target `prefix` + the call's path and
/// query (the instance's base URL for an absolute target, the base's path for an origin-form one), request
/// id, `traceparent` naming the attempt `span` when traced, the remaining time of `budget` in
/// `x-bff-deadline-ms`, the identity headers rendered for the request, the call's extra headers,
/// `Accept: accept`.
pub(crate) fn build_request(
    name: &str,
    req: &CallRequest,
    instance: &Instance,
    prefix: &str,
    budget: Budget,
    span: Option<u64>,
    accept: &'static str,
) -> Result<Request<Full<Bytes>>, DownstreamError> {
    let path_and_query = &*req.path_and_query;
    let mut url = String::with_capacity(prefix.len() + path_and_query.len());
    url.push_str(prefix);
    url.push_str(path_and_query);
    let remaining_ms = budget.remaining_ms();
    let ctx = req.ctx();
    // Only a malformed base URL from config (validated) or header value could fail here.
    let malformed = |what: &str| {
        tracing::warn!(what, "downstream request could not be built");
        DownstreamError::new(name, DownstreamErrorKind::Connect)
    };
    let identity = req.identity().headers();
    // One map sized for every header, filled with prebuilt names (no parsing, one allocation).
    let mut headers = HeaderMap::with_capacity(6 + identity.len() + req.extra.len());
    headers.append(ACCEPT, HeaderValue::from_static(accept));
    headers.append(
        REQUEST_ID_HEADER,
        ctx.request_id_value().header_value().clone(),
    );
    let traceparent = match span {
        Some(id) => req.trace().header_value_for(id),
        None => ctx.traceparent().clone(),
    };
    headers.append(TRACEPARENT_HEADER, traceparent);
    headers.append(DEADLINE, decimal(remaining_ms));
    if let Some(host) = &instance.host {
        headers.append(HOST, host.clone());
    }
    for (header, value) in identity.iter().chain(&req.extra) {
        headers.append(header.clone(), value.clone());
    }
    if req.body.is_some() && !req.extra.iter().any(|(name, _)| name == CONTENT_TYPE) {
        headers.append(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    let mut request = Request::new(Full::new(req.body.clone().unwrap_or_default()));
    *request.method_mut() = req.method.clone();
    *request.uri_mut() = Uri::try_from(url).map_err(|_| malformed("url"))?;
    *request.headers_mut() = headers;
    Ok(request)
}

/// `n` in decimal digits as a header value, written on the stack first: one allocation, where http's
/// `From<u64>` makes two (a buffer, then its shared handle).
fn decimal(n: u64) -> HeaderValue {
    // Digits are always a valid header value; the fallback is never taken.
    HeaderValue::from_str(itoa::Buffer::new().format(n)).unwrap_or(HeaderValue::from_static("0"))
}

/// `x-request-id`, `traceparent` and `x-bff-deadline-ms` as header names ready to insert.
const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static(REQUEST_ID);
const TRACEPARENT_HEADER: HeaderName = HeaderName::from_static(TRACEPARENT);
const DEADLINE: HeaderName = HeaderName::from_static(DEADLINE_HEADER);

/// The error of a request that got no answer: the connection failed, or it was made but the answer broke off
/// (reset, closed, not HTTP). The whole cause chain (e.g. `invalid peer certificate: Expired`) goes to the
/// log, never to the client.
pub(super) fn unanswered(name: &str, e: &hyper_util::client::legacy::Error) -> DownstreamError {
    let cause = error_chain(e);
    if e.is_connect() {
        tracing::warn!(downstream = %name, cause = %cause, "connection failed");
        DownstreamError::new(name, DownstreamErrorKind::Connect)
    } else {
        tracing::warn!(downstream = %name, cause = %cause, "answer broke off");
        DownstreamError::new(name, DownstreamErrorKind::Body)
    }
}

/// The error of an exchange over a lean pool that got no answer, as [`unanswered`] for hyper-util's client.
fn pool_unanswered(name: &str, e: PoolError) -> DownstreamError {
    match e {
        PoolError::Connect(cause) => {
            tracing::warn!(downstream = %name, cause = %cause, "connection failed");
            DownstreamError::new(name, DownstreamErrorKind::Connect)
        }
        PoolError::Broke(e) => {
            tracing::warn!(downstream = %name, cause = %error_chain(&e), "answer broke off");
            DownstreamError::new(name, DownstreamErrorKind::Body)
        }
    }
}

/// `error` and its sources, `: `-separated.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Whether `value` (a `Content-Type`) names one of `allowed` (lower-case media types), parameters ignored.
fn media_type_allowed(value: Option<&HeaderValue>, allowed: &[String]) -> bool {
    let Some(essence) = value
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim())
    else {
        return false;
    };
    allowed.iter().any(|a| a.eq_ignore_ascii_case(essence))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_writes_what_http_writes() {
        for n in [0, 1, 9, 10, 99, 100, 4_999, 1_234_567_890, u64::MAX] {
            assert_eq!(decimal(n), HeaderValue::from(n), "{n}");
        }
    }
}
