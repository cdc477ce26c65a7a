//! Streaming calls: [`Downstream::open_lines`] opens a long-lived GET whose answer is a stream of lines
//! (NDJSON, one change per line) and hands back a [`LineStream`]. The opening goes through the layers that
//! make sense for a stream: the circuit breaker (an open breaker refuses the stream; the opening's outcome
//! feeds it), balancing, the transport with the identity headers, request id and trace context, the opening
//! bounded by the per-call timeout and the request deadline. A stream is never cached, coalesced, retried or
//! hedged (once a byte was relayed, a second attempt could duplicate events), and holds no bulkhead slot
//! (it lives for minutes; the gateway bounds streams per user instead, see [`crate::streams`]).

use axum::http::StatusCode;
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::request::{CallKind, CallRequest};
use super::transport::{build_request, error_chain};
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
        let inner = &*self.inner;
        let req = CallRequest::get(ctx, path_and_query, &[], CallKind::Uncached);
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
        let request = build_request(
            &inner.name,
            &req,
            instance,
            open_deadline,
            None,
            "application/x-ndjson",
        )?;
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
            Ok(Ok(response)) => match response.status() {
                s if s.is_success() => Ok(response),
                StatusCode::NOT_FOUND => Err(self.err(DownstreamErrorKind::NotFound)),
                s => Err(self.err(DownstreamErrorKind::Status(s.as_u16()))),
            },
        };
        let outcome = match &opened {
            Ok(_) => Outcome::Success,
            Err(e) => match e.kind {
                DownstreamErrorKind::Status(s) if s < 500 => Outcome::Success,
                DownstreamErrorKind::NotFound => Outcome::Success,
                DownstreamErrorKind::Deadline => Outcome::Ignore,
                _ => Outcome::Failure,
            },
        };
        if let Some(permit) = permit {
            permit.record(outcome);
        }
        inner.instances.observe(i, outcome);
        let response = opened?;
        Ok(LineStream {
            name: inner.name.clone(),
            body: response.into_body(),
            buffer: BytesMut::new(),
        })
    }
}
