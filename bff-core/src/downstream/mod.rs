//! Clients of the downstream services: one pooled HTTP client shared by all, one [`Downstream`] per named
//! service carrying its base URL and call policy (timeout bounded by the request deadline, no redirects,
//! response size cap), propagating request id, trace context and the verified identity.

mod error;

use std::time::Duration;

use bytes::BytesMut;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{ACCEPT, HeaderValue};
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tracing::Instrument;

pub use error::{DownstreamError, DownstreamErrorKind};

use crate::config::DownstreamConfig;
use crate::context::RequestContext;
use crate::trace::{REQUEST_ID, TRACEPARENT};

/// Builds the one HTTP client that all downstreams of a gateway share (one connection pool), with
/// `connect_timeout` for establishing connections.
pub fn http_client(connect_timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// One named downstream service.
#[derive(Debug, Clone)]
pub struct Downstream {
    /// Configured name, used in logs and errors (never sent to clients).
    name: String,
    /// Base URL without trailing slash.
    base: String,
    /// The shared pooled client.
    client: reqwest::Client,
    /// Per-call timeout.
    timeout: Duration,
    /// Response body cap in bytes.
    max_bytes: usize,
}

/// Characters escaped in a path segment: everything but letters, digits, `-`, `_`, `~`, so `/`, `.`, `%`, `?`
/// and `#` in a parameter can never change the path structure.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'~');

/// Percent-encodes one path segment: everything but ASCII letters, digits, `-`, `_` and `~` is escaped, `.`
/// included, so `../admin` becomes `%2E%2E%2Fadmin` and can never climb out of its segment.
pub fn encode_segment(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

/// Percent-encodes a query component.
pub fn encode_query(value: &str) -> String {
    utf8_percent_encode(value, SEGMENT).to_string()
}

impl Downstream {
    /// A downstream named `name`, configured by `config`, using `client`.
    pub fn new(name: &str, config: &DownstreamConfig, client: reqwest::Client) -> Self {
        Self {
            name: name.to_owned(),
            base: config.url.trim_end_matches('/').to_owned(),
            client,
            timeout: Duration::from_millis(config.timeout_ms),
            max_bytes: config.max_response_bytes,
        }
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// GETs `path_and_query` (already encoded; build it with [`encode_segment`]) and decodes the JSON body.
    /// The path may be an owned `String` (e.g. `format!(..)`), so the future borrows nothing temporary.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        ctx: &RequestContext,
        path_and_query: impl AsRef<str>,
    ) -> Result<T, DownstreamError> {
        let body = self.get_bytes(ctx, path_and_query.as_ref(), &[]).await?;
        serde_json::from_slice(&body).map_err(|e| {
            tracing::warn!(downstream = %self.name, error = %e, "malformed JSON");
            self.err(DownstreamErrorKind::Decode)
        })
    }

    /// Batch lookup: GETs `{prefix}{id1},{id2},...` (each id query-encoded) in calls of at most `per_call`
    /// ids, run in parallel (one call in the normal case), and returns the decoded answers. No call at all for
    /// no ids. E.g. `catalog.get_batch::<ProductBatch>(&ctx, "/products?ids=", &ids, 100)`.
    pub async fn get_batch<T: DeserializeOwned>(
        &self,
        ctx: &RequestContext,
        prefix: &str,
        ids: &[String],
        per_call: usize,
    ) -> Result<Vec<T>, DownstreamError> {
        let calls = ids.chunks(per_call.max(1)).map(|chunk| {
            let list: Vec<String> = chunk.iter().map(|id| encode_query(id)).collect();
            self.get_json::<T>(ctx, format!("{prefix}{}", list.join(",")))
        });
        futures::future::try_join_all(calls).await
    }

    /// GETs `path_and_query` with `extra_headers` and returns the raw body of a 2xx answer.
    pub async fn get_bytes(
        &self,
        ctx: &RequestContext,
        path_and_query: &str,
        extra_headers: &[(reqwest::header::HeaderName, HeaderValue)],
    ) -> Result<bytes::Bytes, DownstreamError> {
        let now = Instant::now();
        let deadline = ctx.deadline();
        if deadline <= now {
            return Err(self.err(DownstreamErrorKind::Deadline));
        }
        let call_deadline = (now + self.timeout).min(deadline);
        let span =
            tracing::info_span!("downstream", downstream = %self.name, path = %path_and_query);
        let result = tokio::time::timeout_at(
            call_deadline,
            self.fetch(ctx, path_and_query, extra_headers),
        )
        .instrument(span)
        .await;
        match result {
            Ok(r) => r,
            Err(_) if call_deadline == deadline => Err(self.err(DownstreamErrorKind::Deadline)),
            Err(_) => Err(self.err(DownstreamErrorKind::Timeout)),
        }
        .inspect_err(|e| tracing::warn!(error = %e, elapsed_ms = now.elapsed().as_millis() as u64, "downstream call failed"))
    }

    async fn fetch(
        &self,
        ctx: &RequestContext,
        path_and_query: &str,
        extra_headers: &[(reqwest::header::HeaderName, HeaderValue)],
    ) -> Result<bytes::Bytes, DownstreamError> {
        let url = format!("{}{}", self.base, path_and_query);
        let mut request = self
            .client
            .get(url)
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .header(REQUEST_ID, ctx.request_id())
            .header(TRACEPARENT, ctx.trace().header_value());
        if let Some(identity) = ctx.identity() {
            for (name, value) in identity.downstream_headers() {
                request = request.header(name, value);
            }
        }
        for (name, value) in extra_headers {
            request = request.header(name.clone(), value.clone());
        }
        let mut response = request.send().await.map_err(|e| {
            tracing::debug!(error = %e, "send failed");
            if e.is_connect() {
                self.err(DownstreamErrorKind::Connect)
            } else {
                // Connected, but the answer broke off (reset, closed, not HTTP).
                self.err(DownstreamErrorKind::Body)
            }
        })?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(self.err(DownstreamErrorKind::NotFound));
        }
        if !status.is_success() {
            return Err(self.err(DownstreamErrorKind::Status(status.as_u16())));
        }
        if response
            .content_length()
            .is_some_and(|len| len > self.max_bytes as u64)
        {
            return Err(self.err(DownstreamErrorKind::TooLarge));
        }
        let mut body = BytesMut::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > self.max_bytes {
                        return Err(self.err(DownstreamErrorKind::TooLarge));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "body read failed");
                    return Err(self.err(DownstreamErrorKind::Body));
                }
            }
        }
        tracing::debug!(
            status = status.as_u16(),
            bytes = body.len(),
            "downstream answered"
        );
        Ok(body.freeze())
    }

    /// Whether the downstream answers at all (any HTTP status) on `/healthz` within `timeout`.
    pub async fn is_reachable(&self, timeout: Duration) -> bool {
        let url = format!("{}/healthz", self.base);
        matches!(
            tokio::time::timeout(timeout, self.client.get(url).send()).await,
            Ok(Ok(_))
        )
    }

    fn err(&self, kind: DownstreamErrorKind) -> DownstreamError {
        DownstreamError::new(self.name.clone(), kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Path parameters cannot climb out of their segment.
    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("42"), "42");
        assert_eq!(encode_segment("../admin"), "%2E%2E%2Fadmin");
        assert_eq!(encode_segment(".."), "%2E%2E");
        assert_eq!(encode_segment("a?b#c%2F"), "a%3Fb%23c%252F");
    }
}
