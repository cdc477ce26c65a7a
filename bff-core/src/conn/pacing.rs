//! Paced responses: every response body is handed to the connection in chunks of at most [`CHUNK`] bytes,
//! only when the connection asks for more (so a client that does not read — a zero HTTP/2 window, a full TCP
//! buffer — holds at most one chunk per stream inside hyper), the bytes produced but not yet handed over are
//! counted against a memory budget shared by all connections, and a connection whose responses wait longer
//! than the send-stall timeout for the client to take the next bytes is closed (see [`ConnWatch::stalled`]).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::BffError;

/// Largest piece of a response body handed to the connection at once.
pub const CHUNK: usize = 16 * 1024;

/// Response bytes held for clients across all connections, against a budget.
#[derive(Debug)]
pub struct ResponseBudget {
    held: AtomicUsize,
    max: usize,
}

impl ResponseBudget {
    /// A budget of `max` bytes.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            held: AtomicUsize::new(0),
            max,
        })
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    fn try_reserve(&self, bytes: usize) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|total| *total <= self.max)
            })
            .is_ok()
    }

    fn force_reserve(&self, bytes: usize) {
        self.held.fetch_add(bytes, Ordering::AcqRel);
    }

    fn release(&self, bytes: usize) {
        let _ = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                Some(held.saturating_sub(bytes))
            });
    }
}

/// What one connection's responses are doing: how many wait for the client to take bytes, and when a body
/// last made progress.
#[derive(Debug)]
pub struct ConnWatch {
    started: Instant,
    /// Bodies that have bytes ready (or unstarted) and wait for the connection to ask for them.
    waiting: AtomicUsize,
    /// Milliseconds since `started` of the last body progress (creation or a chunk handed over).
    last_progress_ms: AtomicU64,
    /// Woken when `waiting` leaves zero.
    wake: Notify,
    /// Response bodies ended (sent completely, or dropped with their connection).
    finished: AtomicU64,
}

impl ConnWatch {
    /// A watch for a new connection.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            waiting: AtomicUsize::new(0),
            last_progress_ms: AtomicU64::new(0),
            wake: Notify::new(),
            finished: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn progress(&self) {
        self.last_progress_ms
            .store(self.now_ms(), Ordering::Release);
    }

    /// When a body of this connection last made progress (or the connection started).
    pub fn last_progress(&self) -> Instant {
        self.started + Duration::from_millis(self.last_progress_ms.load(Ordering::Acquire))
    }

    /// Response bodies of this connection ended so far.
    pub fn finished(&self) -> u64 {
        self.finished.load(Ordering::Relaxed)
    }

    fn start_waiting(&self) {
        if self.waiting.fetch_add(1, Ordering::AcqRel) == 0 {
            self.wake.notify_one();
        }
    }

    fn stop_waiting(&self) {
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }

    /// Resolves once a response of this connection has waited `timeout` for the client to take its next
    /// bytes with no body of the connection making progress meanwhile; never while nothing waits.
    pub async fn stalled(&self, timeout: Duration) {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        loop {
            if self.waiting.load(Ordering::Acquire) == 0 {
                self.wake.notified().await;
            }
            let idle = self
                .now_ms()
                .saturating_sub(self.last_progress_ms.load(Ordering::Acquire));
            if idle < timeout_ms {
                // Look again when a response waiting since the last progress could have stalled, not at once:
                // by then the response that woke this has usually been sent, and waiting for the next one
                // again would cost the connection task a wake-up per response (bench/notes.md). Responses
                // starting meanwhile leave a notification that the next round takes.
                tokio::time::sleep(Duration::from_millis(timeout_ms - idle)).await;
                continue;
            }
            if self.waiting.load(Ordering::Acquire) > 0 {
                return;
            }
        }
    }
}

/// Wraps the responses of one connection.
#[derive(Debug, Clone)]
pub struct Pacer {
    watch: Arc<ConnWatch>,
    budget: Arc<ResponseBudget>,
}

impl Pacer {
    /// A pacer reporting to `watch` and charging `budget`.
    pub fn new(watch: Arc<ConnWatch>, budget: Arc<ResponseBudget>) -> Self {
        Self { watch, budget }
    }

    /// The watch of this pacer's connection.
    pub fn watch(&self) -> &Arc<ConnWatch> {
        &self.watch
    }

    /// `response` with a paced body; a 503 `overloaded` instead when its body would exceed the budget.
    pub fn wrap(&self, response: Response) -> Response<Paced> {
        let size = usize::try_from(hyper::body::Body::size_hint(response.body()).lower())
            .unwrap_or(usize::MAX);
        let response = if self.budget.try_reserve(size) {
            response
        } else {
            tracing::warn!(
                bytes = size,
                held = self.budget.held(),
                "response memory budget spent; answering 503"
            );
            let refused = BffError::Overloaded {
                part: None,
                retry_after_s: 1,
            }
            .into_response();
            let size =
                usize::try_from(hyper::body::Body::size_hint(refused.body()).lower()).unwrap_or(0);
            // Small and bounded: always admitted, so the client learns why.
            self.budget.force_reserve(size);
            refused
        };
        let held = usize::try_from(hyper::body::Body::size_hint(response.body()).lower())
            .unwrap_or(usize::MAX);
        self.watch.progress();
        self.watch.start_waiting();
        response.map(|inner| Paced {
            inner,
            rest: Bytes::new(),
            held,
            in_hand: 0,
            waiting: true,
            watch: self.watch.clone(),
            budget: self.budget.clone(),
        })
    }
}

/// A response body handed over in chunks of at most [`CHUNK`] bytes.
#[derive(Debug)]
pub struct Paced {
    inner: Body,
    /// The part of the last inner frame not yet handed over.
    rest: Bytes,
    /// Bytes still charged to the budget.
    held: usize,
    /// Size of the piece handed over last: still charged until the connection asks for more (by then it has
    /// taken it), since until then it may sit unsent in the connection's buffers.
    in_hand: usize,
    /// Whether this body counts in its connection's `waiting`.
    waiting: bool,
    watch: Arc<ConnWatch>,
    budget: Arc<ResponseBudget>,
}

impl Paced {
    fn set_waiting(&mut self, waiting: bool) {
        if waiting != self.waiting {
            self.waiting = waiting;
            if waiting {
                self.watch.start_waiting();
            } else {
                self.watch.stop_waiting();
            }
        }
    }

    fn hand_over(&mut self, mut data: Bytes) -> Frame<Bytes> {
        if data.len() > CHUNK {
            self.rest = data.split_off(CHUNK);
        }
        self.in_hand = data.len();
        self.watch.progress();
        // Until the connection asks again, this body waits for the client.
        self.set_waiting(true);
        Frame::data(data)
    }
}

impl hyper::body::Body for Paced {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        this.set_waiting(false);
        // Asked again: the piece handed over last has been taken.
        let taken = std::mem::take(&mut this.in_hand).min(this.held);
        this.held -= taken;
        this.budget.release(taken);
        if !this.rest.is_empty() {
            let rest = std::mem::take(&mut this.rest);
            return Poll::Ready(Some(Ok(this.hand_over(rest))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => Poll::Ready(Some(Ok(this.hand_over(data)))),
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let rest = self.rest.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(rest));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(rest));
        }
        hint
    }
}

impl Drop for Paced {
    fn drop(&mut self) {
        self.set_waiting(false);
        self.watch.finished.fetch_add(1, Ordering::Relaxed);
        self.budget.release(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A large body is handed over in chunks, charged to the budget until handed over, and released on drop;
    /// a body that would exceed the budget becomes a 503.
    #[tokio::test]
    async fn chunks_budget_and_refusal() {
        let budget = ResponseBudget::new(100_000);
        let pacer = Pacer::new(ConnWatch::new(), budget.clone());
        let response = pacer.wrap(Response::new(Body::from(vec![7u8; 40_000])));
        assert_eq!(budget.held(), 40_000);
        let mut body = response.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first.len(), CHUNK);
        assert_eq!(
            budget.held(),
            40_000,
            "a piece handed over stays charged until the next ask"
        );
        let _second = body.frame().await.unwrap().unwrap();
        assert_eq!(budget.held(), 40_000 - CHUNK);
        drop(body);
        assert_eq!(budget.held(), 0);

        let _held = pacer.wrap(Response::new(Body::from(vec![0u8; 90_000])));
        let refused = pacer.wrap(Response::new(Body::from(vec![0u8; 20_000])));
        assert_eq!(refused.status(), 503);
        let bytes = refused.into_body().collect().await.unwrap().to_bytes();
        assert!(bytes.len() < 1024);
    }

    /// A connection is stalled when a body waits past the timeout, and not while nothing waits.
    #[tokio::test(start_paused = true)]
    async fn stall_detection() {
        let watch = ConnWatch::new();
        let pacer = Pacer::new(watch.clone(), ResponseBudget::new(1 << 20));
        let idle = tokio::time::timeout(
            Duration::from_secs(60),
            watch.stalled(Duration::from_secs(1)),
        );
        assert!(idle.await.is_err(), "nothing waits: never stalled");
        let response = pacer.wrap(Response::new(Body::from("x")));
        tokio::time::timeout(
            Duration::from_secs(2),
            watch.stalled(Duration::from_secs(1)),
        )
        .await
        .expect("a body nobody polls stalls the connection");
        let mut body = response.into_body();
        let _ = body.frame().await;
        let _ = body.frame().await;
        drop(body);
        let idle = tokio::time::timeout(
            Duration::from_secs(60),
            watch.stalled(Duration::from_secs(1)),
        );
        assert!(idle.await.is_err(), "a finished body does not wait");
    }
}
