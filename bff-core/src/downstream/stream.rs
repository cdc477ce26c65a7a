//! Streaming calls: [`Downstream::open_lines`] opens a long-lived GET whose answer is a stream of lines
//! (NDJSON, one change per line) and hands back a [`LineStream`]. The opening goes through the layers that
//! make sense for a stream: the circuit breaker (an open breaker refuses the stream; the opening's outcome
//! feeds it), balancing, the transport with the identity headers, request id and trace context, the opening
//! bounded by the per-call timeout and the request deadline. A stream is never cached, coalesced, retried or
//! hedged (once a byte was relayed, a second attempt could duplicate events), and holds no bulkhead slot
//! (it lives for minutes; the gateway bounds streams per user instead, see [`crate::streams`]).
//! [`Downstream::open_messages`] opens a gRPC server stream the same way and hands back a [`MessageStream`].

use axum::http::StatusCode;
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::request::{CallKind, CallRequest};
use super::transport::{Budget, build_request, error_chain};
use super::{Downstream, DownstreamError, DownstreamErrorKind};
use crate::context::RequestContext;
use crate::resilience::breaker::{Breaker, Outcome};

/// Longest line a stream may send (a longer one ends the stream).
pub const MAX_LINE_BYTES: usize = 256 * 1024;

/// The lines of an opened downstream stream.
#[derive(Debug)]
pub struct LineStream {
    name: String,
    body: Incoming,
    buffer: BytesMut,
}

impl LineStream {
    /// The next non-empty line (without its `\n`); `None` when the downstream ended the stream, an error
    /// when it broke off or sent a line longer than [`MAX_LINE_BYTES`].
    pub async fn next_line(&mut self) -> Option<Result<Bytes, DownstreamError>> {
        loop {
            if let Some(at) = self.buffer.iter().position(|&b| b == b'\n') {
                let line = self.buffer.split_to(at).freeze();
                self.buffer.advance(1);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(Ok(line));
            }
            if self.buffer.len() > MAX_LINE_BYTES {
                return Some(Err(self.err(DownstreamErrorKind::TooLarge)));
            }
            match self.body.frame().await? {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                Err(e) => {
                    tracing::debug!(downstream = %self.name, error = %e, "stream broke off");
                    return Some(Err(self.err(DownstreamErrorKind::Body)));
                }
            }
        }
    }

    fn err(&self, kind: DownstreamErrorKind) -> DownstreamError {
        DownstreamError::new(self.name.clone(), kind)
    }
}

impl Downstream {
    /// Opens a stream of lines: GETs `path_and_query` once (see the module docs for the layers it passes) and
    /// returns the stream when the downstream answers 2xx. A 404 is [`DownstreamErrorKind::NotFound`], other
    /// statuses [`DownstreamErrorKind::Status`].
    pub async fn open_lines(
        &self,
        ctx: &RequestContext,
        path_and_query: &str,
    ) -> Result<LineStream, DownstreamError> {
        let req = CallRequest::get(ctx, path_and_query, &[], CallKind::Uncached);
        let response = self
            .open(&req, "application/x-ndjson", |response| {
                match response.status() {
                    s if s.is_success() => Ok(()),
                    StatusCode::NOT_FOUND => Err(DownstreamErrorKind::NotFound),
                    s => Err(DownstreamErrorKind::Status(s.as_u16())),
                }
            })
            .await?;
        Ok(LineStream {
            name: self.inner.name.clone(),
            body: response.into_body(),
            buffer: BytesMut::new(),
        })
    }

    /// Opens a gRPC server stream: calls `method` with `request` once (the layers of the module docs; no
    /// `grpc-timeout`, the stream outlives the request — the gateway's relay bounds it) and returns its
    /// messages once the downstream answered the headers. A status before any message fails the opening
    /// with its mapping (see [`crate::downstream::grpc`]).
    pub async fn open_messages(
        &self,
        ctx: &RequestContext,
        method: super::GrpcMethod,
        request: &impl prost::Message,
    ) -> Result<MessageStream, DownstreamError> {
        let req = CallRequest::rpc(ctx, method.path, super::grpc::frame(request), false);
        let response = self
            .open(&req, "application/grpc", super::grpc::check_opened)
            .await?;
        Ok(MessageStream {
            name: self.inner.name.clone(),
            body: response.into_body(),
            buffer: BytesMut::new(),
            max_bytes: self.inner.max_message_bytes,
        })
    }

    /// The opening of a stream: breaker, one instance, the request sent with `accept` and answered within
    /// min(per-call timeout, deadline), the answer's head judged by `check` (its outcome feeding the breaker
    /// and the instance's health).
    async fn open(
        &self,
        req: &CallRequest,
        accept: &'static str,
        check: impl FnOnce(&axum::http::Response<Incoming>) -> Result<(), DownstreamErrorKind>,
    ) -> Result<axum::http::Response<Incoming>, DownstreamError> {
        let inner = &*self.inner;
        // Breaker: an open breaker refuses the stream at once.
        let permit = match inner.breaker.as_ref().map(Breaker::try_acquire) {
            None => None,
            Some(Ok(permit)) => Some(permit),
            Some(Err(wait)) => {
                return Err(self.err(DownstreamErrorKind::CircuitOpen {
                    retry_after_ms: wait.as_millis() as u64,
                }));
            }
        };
        // Balance: one instance.
        let i = inner.instances.pick(None);
        let instance = inner.instances.get(i);
        let deadline = req.deadline();
        let open_deadline = (Instant::now() + inner.timeout).min(deadline);
        let mut request = build_request(
            &inner.name,
            req,
            instance,
            &instance.base,
            Budget::until(open_deadline),
            None,
            accept,
        )?;
        if req.rpc {
            super::grpc::stream_headers(request.headers_mut());
        }
        let opened = match tokio::time::timeout_at(
            open_deadline,
            inner.transport.http_client().request(request),
        )
        .await
        {
            Err(_) if open_deadline == deadline => Err(self.err(DownstreamErrorKind::Deadline)),
            Err(_) => Err(self.err(DownstreamErrorKind::Timeout)),
            Ok(Err(e)) => {
                tracing::warn!(downstream = %inner.name, cause = %error_chain(&e), "stream could not be opened");
                Err(self.err(if e.is_connect() {
                    DownstreamErrorKind::Connect
                } else {
                    DownstreamErrorKind::Body
                }))
            }
            Ok(Ok(response)) => match check(&response) {
                Ok(()) => Ok(response),
                Err(kind) => Err(self.err(kind)),
            },
        };
        let outcome = match &opened {
            Ok(_) => Outcome::Success,
            Err(e) => match e.kind {
                DownstreamErrorKind::Status(s) if s < 500 => Outcome::Success,
                DownstreamErrorKind::NotFound | DownstreamErrorKind::Forbidden => Outcome::Success,
                DownstreamErrorKind::GrpcStatus(code) if !super::grpc::is_server_fault(code) => {
                    Outcome::Success
                }
                DownstreamErrorKind::Deadline => Outcome::Ignore,
                _ => Outcome::Failure,
            },
        };
        if let Some(permit) = permit {
            permit.record(outcome);
        }
        inner.instances.observe(i, outcome, Instant::now());
        opened
    }
}

/// The messages of an opened gRPC server stream.
#[derive(Debug)]
pub struct MessageStream {
    name: String,
    body: Incoming,
    buffer: BytesMut,
    max_bytes: usize,
}

impl MessageStream {
    /// The next message, decoded; `None` when the downstream ended the stream with `OK`; an error when it
    /// ended with another status, broke off (reset, closed without a status), or sent a message that is
    /// oversized, compressed or not a `M`.
    pub async fn next_message<M: prost::Message + Default>(
        &mut self,
    ) -> Option<Result<M, DownstreamError>> {
        loop {
            match super::grpc::split_message(&mut self.buffer, self.max_bytes) {
                Ok(Some(message)) => {
                    return Some(M::decode(message).map_err(|e| {
                        tracing::warn!(downstream = %self.name, error = %e, "malformed protobuf message");
                        self.err(DownstreamErrorKind::Decode)
                    }));
                }
                Ok(None) => {}
                Err(kind) => return Some(Err(self.err(kind))),
            }
            let Some(frame) = self.body.frame().await else {
                tracing::warn!(downstream = %self.name, "gRPC stream ended without a status");
                return Some(Err(self.err(DownstreamErrorKind::Body)));
            };
            match frame {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => self.buffer.extend_from_slice(&data),
                    Err(frame) => {
                        let trailers = frame.into_trailers().unwrap_or_default();
                        return super::grpc::stream_end(&self.name, &trailers)
                            .map(|kind| Err(self.err(kind)));
                    }
                },
                Err(e) => {
                    tracing::warn!(downstream = %self.name, error = %e, "gRPC stream broke off");
                    return Some(Err(self.err(DownstreamErrorKind::Body)));
                }
            }
        }
    }

    fn err(&self, kind: DownstreamErrorKind) -> DownstreamError {
        DownstreamError::new(self.name.clone(), kind)
    }
}
