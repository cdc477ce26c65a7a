//! Long-lived event streams to clients (Server-Sent Events), generic over what they carry: a handler admits
//! the caller ([`Streams::admit`]: at most `streams.max_per_user` at once, else 429 `too_many_streams`),
//! turns its source (e.g. a downstream's [`crate::downstream::LineStream`]) into [`SseEvent`]s and answers
//! [`Streams::respond`]. The relay (`relay.rs`) adds what every stream needs: `retry:` first, heartbeat
//! comments, an idle timeout, the end when the caller's credential expires (`exp`), and on shutdown a
//! final event with `retry:` telling clients when to reconnect. Each event carries an `id:` so a client
//! resumes with `Last-Event-ID` (see [`last_event_id`]). Settings: [`StreamsConfig`] (`[streams]`).

pub mod config;
mod relay;
pub mod screen;

use std::sync::{Arc, LazyLock};

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures::Stream;
use tokio::sync::watch;

pub use config::StreamsConfig;
pub use relay::SseEvent;

use crate::auth::Identity;
use crate::error::BffError;
use crate::per_user::{PerUser, Slot};

/// Set once the process shuts down (see [`drain_all`]).
static DRAINING: LazyLock<watch::Sender<bool>> = LazyLock::new(|| watch::channel(false).0);

/// Tells every open stream of the process that it shuts down: each sends its final event with `retry:` and
/// ends, so graceful shutdown is not held up by streams; every WebSocket connection ([`crate::live`]) closes
/// with 1001 `shutdown`. Called by the gateway binary on SIGTERM/Ctrl-C.
pub fn drain_all() {
    DRAINING.send_replace(true);
}

/// A receiver of the process-wide shutdown signal of [`drain_all`] (WebSocket connections close on it too).
pub(crate) fn shutdown_receiver() -> watch::Receiver<bool> {
    DRAINING.subscribe()
}

/// The event streams of one gateway: their settings, open streams per caller, and its drain signal.
#[derive(Debug)]
pub struct Streams {
    config: StreamsConfig,
    open: Arc<PerUser>,
    drain: watch::Sender<bool>,
}

/// One admitted stream of a caller: counted until dropped (when the response body ends or is dropped).
#[derive(Debug)]
pub struct StreamPermit {
    _slot: Slot,
}

/// The `Last-Event-ID` a reconnecting client sent, if any (visible ASCII, at most 128 bytes; else ignored).
pub fn last_event_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

impl Streams {
    /// The streams of a gateway configured by `config`.
    pub fn new(config: &StreamsConfig) -> Arc<Self> {
        Arc::new(Self {
            config: config.clone(),
            open: PerUser::new(config.max_per_user),
            drain: watch::channel(false).0,
        })
    }

    /// The settings.
    pub fn config(&self) -> &StreamsConfig {
        &self.config
    }

    /// Admits one more stream of `identity`, or 429 `too_many_streams` when the caller has
    /// `streams.max_per_user` open already.
    pub fn admit(self: &Arc<Self>, identity: &Identity) -> Result<StreamPermit, BffError> {
        let slot = self
            .open
            .admit(&identity.subject)
            .ok_or(BffError::Refused {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "too_many_streams",
                detail: "too many open event streams; close one first",
            })?;
        Ok(StreamPermit { _slot: slot })
    }

    /// Open streams of the caller `subject`.
    pub fn open_of(&self, subject: &str) -> usize {
        self.open.open_of(subject)
    }

    /// Ends this gateway's streams as on shutdown (final event, `retry:`).
    pub fn drain(&self) {
        self.drain.send_replace(true);
    }

    /// The `text/event-stream` response relaying `events` for the caller `identity` under `permit`: see the
    /// module docs for what the relay adds.
    pub fn respond<S>(&self, permit: StreamPermit, identity: &Identity, events: S) -> Response
    where
        S: Stream<Item = SseEvent> + Send + 'static,
    {
        relay::response(relay::Relay::new(
            &self.config,
            permit,
            identity.expires_at,
            events,
            [self.drain.subscribe(), DRAINING.subscribe()],
        ))
    }
}
