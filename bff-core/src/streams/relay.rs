//! The relay of one event stream: encodes [`SseEvent`]s as `text/event-stream` and interleaves what the
//! gateway adds — `retry:` first, heartbeat comments, and the final `event: end` (`data:
//! {"reason": ...}`) when the stream ends for `idle_timeout`, `token_expired` or `shutdown` (the last with
//! `retry:` again). A source that ends just ends the response.

use std::convert::Infallible;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior, Sleep};

use super::StreamPermit;
use super::config::StreamsConfig;

/// One event: its `id:` (what a client sends back in `Last-Event-ID`), its `event:` type, its `data:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The event id (line breaks and NUL are removed).
    pub id: String,
    /// The event type, e.g. `status`.
    pub event: &'static str,
    /// The data, usually one JSON document (each line becomes one `data:` line).
    pub data: String,
}

impl SseEvent {
    /// The wire form: `id:`, `event:`, one `data:` per line, a blank line.
    pub fn encode(&self) -> Bytes {
        let mut out = String::with_capacity(self.data.len() + self.id.len() + 32);
        out.push_str("id: ");
        out.extend(self.id.chars().filter(|c| !matches!(c, '\r' | '\n' | '\0')));
        out.push_str("\nevent: ");
        out.extend(self.event.chars().filter(|c| !matches!(c, '\r' | '\n')));
        out.push('\n');
        for line in self.data.split('\n') {
            out.push_str("data: ");
            out.push_str(line.trim_end_matches('\r'));
            out.push('\n');
        }
        out.push('\n');
        Bytes::from(out)
    }
}

/// Why the gateway ended a stream (the `reason` of the final `end` event).
fn end_event(reason: &str, retry_ms: Option<u64>) -> Bytes {
    let retry = retry_ms.map_or(String::new(), |ms| format!("retry: {ms}\n"));
    Bytes::from(format!(
        "{retry}event: end\ndata: {{\"reason\":\"{reason}\"}}\n\n"
    ))
}

/// The state of one stream.
pub(super) struct Relay {
    events: Pin<Box<dyn Stream<Item = SseEvent> + Send>>,
    heartbeat: Interval,
    idle_timeout: Duration,
    idle: Pin<Box<Sleep>>,
    expires: Option<Pin<Box<Sleep>>>,
    drains: [watch::Receiver<bool>; 2],
    retry_ms: u64,
    started: bool,
    done: bool,
    _permit: StreamPermit,
}

impl Relay {
    /// A relay of `events` under `permit`, ending at `expires_at` (Unix seconds) if any, or when one of
    /// `drains` turns true.
    pub(super) fn new<S>(
        config: &StreamsConfig,
        permit: StreamPermit,
        expires_at: Option<u64>,
        events: S,
        drains: [watch::Receiver<bool>; 2],
    ) -> Self
    where
        S: Stream<Item = SseEvent> + Send + 'static,
    {
        let every = Duration::from_millis(config.heartbeat_ms);
        let mut heartbeat = tokio::time::interval_at(Instant::now() + every, every);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let idle_timeout = Duration::from_millis(config.idle_timeout_ms);
        let expires = expires_at.map(|exp| {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            Box::pin(tokio::time::sleep(Duration::from_secs(
                exp.saturating_sub(now),
            )))
        });
        Self {
            events: Box::pin(events),
            heartbeat,
            idle_timeout,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            expires,
            drains,
            retry_ms: config.retry_ms,
            started: false,
            done: false,
            _permit: permit,
        }
    }

    /// The next bytes to send; `None` ends the response.
    async fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        if !self.started {
            self.started = true;
            return Some(Bytes::from(format!("retry: {}\n\n", self.retry_ms)));
        }
        if self.drains.iter().any(|d| *d.borrow()) {
            self.done = true;
            return Some(end_event("shutdown", Some(self.retry_ms)));
        }
        let [a, b] = &mut self.drains;
        let expires = async {
            match &mut self.expires {
                Some(sleep) => sleep.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = self.events.next() => match event {
                Some(event) => {
                    self.idle.as_mut().reset(Instant::now() + self.idle_timeout);
                    Some(event.encode())
                }
                None => {
                    self.done = true;
                    None
                }
            },
            _ = self.heartbeat.tick() => Some(Bytes::from_static(b": hb\n\n")),
            () = &mut self.idle => {
                self.done = true;
                Some(end_event("idle_timeout", None))
            }
            () = expires => {
                self.done = true;
                Some(end_event("token_expired", None))
            }
            _ = changed(a) => {
                self.done = true;
                Some(end_event("shutdown", Some(self.retry_ms)))
            }
            _ = changed(b) => {
                self.done = true;
                Some(end_event("shutdown", Some(self.retry_ms)))
            }
        }
    }
}

/// Completes when `drain` turns true (never when its sender is gone).
async fn changed(drain: &mut watch::Receiver<bool>) {
    if drain.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The `text/event-stream` response of `relay`.
pub(super) fn response(relay: Relay) -> Response {
    let body = futures::stream::unfold(relay, |mut relay| async move {
        let bytes = relay.next().await?;
        Some((Ok::<_, Infallible>(bytes), relay))
    });
    event_stream(Body::from_stream(body))
}

/// A `text/event-stream` response of `body`: never stored (`Cache-Control: no-store`), never buffered by a
/// proxy (`X-Accel-Buffering: no`); the compression and conditional-GET layers leave it alone.
pub(super) fn event_stream(body: Body) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Identity;
    use crate::streams::Streams;
    use http_body_util::BodyExt;

    fn identity(expires_at: Option<u64>) -> Identity {
        Identity {
            subject: "7".into(),
            client: "web".into(),
            scopes: vec![],
            partner: None,
            expires_at,
        }
    }

    async fn next_text(body: &mut Body) -> Option<String> {
        let frame = body.frame().await?.ok()?;
        Some(String::from_utf8_lossy(&frame.into_data().ok()?).into_owned())
    }

    #[test]
    fn encoding_strips_line_breaks_from_ids_and_splits_data() {
        let e = SseEvent {
            id: "1\n2".into(),
            event: "status",
            data: "a\nb".into(),
        };
        assert_eq!(e.encode(), "id: 12\nevent: status\ndata: a\ndata: b\n\n");
    }

    /// Shutdown sends the final event with `retry:` and frees the caller's slot.
    #[tokio::test]
    async fn drain_ends_with_retry_and_frees_the_permit() {
        let streams = Streams::new(&StreamsConfig::default());
        let who = identity(None);
        let permit = streams.admit(&who).expect("admitted");
        assert_eq!(streams.open_of("7"), 1);
        let response = streams.respond(permit, &who, futures::stream::pending());
        let mut body = response.into_body();
        assert_eq!(
            next_text(&mut body).await.as_deref(),
            Some("retry: 3000\n\n")
        );
        streams.drain();
        assert_eq!(
            next_text(&mut body).await.as_deref(),
            Some("retry: 3000\nevent: end\ndata: {\"reason\":\"shutdown\"}\n\n")
        );
        assert!(body.frame().await.is_none());
        drop(body);
        assert_eq!(streams.open_of("7"), 0);
    }
}
