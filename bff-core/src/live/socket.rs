//! One WebSocket connection after the upgrade. Three things run together on the connection's task: the
//! reader (client frames; text messages go to the gateway's inbox, in order, with backpressure), the writer
//! (the bounded outgoing queue, and a ping every `live.ping_interval_ms`), and the gateway's own future (the
//! [`Session`] it was handed). The first of these that ends, or the queue overflowing, the token expiring or
//! shutdown, decides why the connection closes; the others are dropped (cancelling whatever the gateway's
//! future was doing), then one close frame is sent (waiting at most `live.pong_timeout_ms` for the client to
//! take it). Close codes: see [`End`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::LivePermit;
use crate::auth::Identity;
use crate::context::RequestContext;

/// Client messages the reader may hold for the gateway's future before it stops reading: one, so the
/// gateway's future handles at most a message or two between two turns of the writer, and the outgoing
/// queue overflows only when the client does not take its messages (not because one burst of answers
/// outran the writer's next turn).
const INBOX: usize = 1;

/// What the gateway's future of one connection is handed.
#[derive(Debug)]
pub struct Session {
    /// The caller who opened the connection (from the ticket).
    pub identity: Identity,
    /// The client's text messages, in order; `None` once the client stopped sending.
    pub inbox: mpsc::Receiver<String>,
    /// Where the gateway puts the messages for the client.
    pub outbox: Outbox,
    ctx: RequestContext,
    call_budget: Duration,
}

impl Session {
    /// A context for one downstream call (or the opening of a downstream stream) made on behalf of this
    /// connection: the upgrade request's id, trace and identity, and a fresh deadline of
    /// `server.request_timeout_ms` from now.
    pub fn call_context(&self) -> RequestContext {
        self.ctx.detached(Instant::now() + self.call_budget)
    }
}

/// The sending side of a connection's bounded outgoing queue (`live.send_queue` messages).
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<String>,
    overflow: Arc<Notify>,
}

impl Outbox {
    /// Queues `text` for the client without waiting. False when the connection is gone, or when its queue
    /// is full: the client does not take its messages, and the connection is closed with 1013
    /// `slow_consumer` (nothing is buffered beyond the queue).
    pub fn send(&self, text: String) -> bool {
        match self.tx.try_send(text) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflow.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// [`Outbox::send`] of `value` as JSON.
    pub fn send_json<T: Serialize>(&self, value: &T) -> bool {
        serde_json::to_string(value).is_ok_and(|text| self.send(text))
    }
}

/// Why a connection ended, and the close frame the gateway sends for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client closed the connection or went away (no close frame of the gateway's own).
    Client,
    /// The gateway's future ended: 1000 (normal closure) `done`.
    Done,
    /// A message or frame over `live.max_message_bytes`: 1009 (message too big) `message_too_big`.
    TooBig,
    /// A binary message (the protocol is text): 1003 (unsupported data) `text_only`.
    Binary,
    /// A frame the protocol does not allow: 1002 (protocol error) `protocol_error`.
    Protocol,
    /// Nothing heard for `ping_interval_ms + pong_timeout_ms`: 1001 (going away) `ping_timeout`.
    PingTimeout,
    /// The outgoing queue overflowed: 1013 (try again later) `slow_consumer`.
    SlowConsumer,
    /// The credential's `exp` passed: 1008 (policy violation) `token_expired`.
    TokenExpired,
    /// The gateway shuts down: 1001 (going away) `shutdown`.
    Shutdown,
}

impl End {
    /// The reason as a metric label (`reason` of `bff_live_closed_total`).
    pub fn label(self) -> &'static str {
        self.close_frame().map_or("client", |(_, reason)| reason)
    }

    /// The close code and reason sent, if any.
    pub fn close_frame(self) -> Option<(u16, &'static str)> {
        Some(match self {
            End::Client => return None,
            End::Done => (1000, "done"),
            End::TooBig => (1009, "message_too_big"),
            End::Binary => (1003, "text_only"),
            End::Protocol => (1002, "protocol_error"),
            End::PingTimeout => (1001, "ping_timeout"),
            End::SlowConsumer => (1013, "slow_consumer"),
            End::TokenExpired => (1008, "token_expired"),
            End::Shutdown => (1001, "shutdown"),
        })
    }
}

/// The fixed settings of one connection.
pub(super) struct Settings {
    pub(super) ping_interval: Duration,
    pub(super) pong_timeout: Duration,
    pub(super) send_queue: usize,
    pub(super) call_budget: Duration,
}

/// Completes when `drain` turns true (never when its sender is gone).
async fn drained(drain: &mut watch::Receiver<bool>) {
    if drain.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// How a read error ends the connection: an oversized message or frame is 1009, a broken frame 1002, an
/// I/O error means the client is gone.
fn read_error(error: axum::Error) -> End {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let inner = error.into_inner();
    match inner.downcast_ref::<WsError>() {
        Some(WsError::Capacity(_)) => End::TooBig,
        Some(WsError::Protocol(_) | WsError::Utf8(_)) => End::Protocol,
        _ => End::Client,
    }
}

/// Runs the connection `socket` of `identity` until it ends (see the module docs); `permit` is released as
/// soon as the end is decided.
#[allow(clippy::too_many_arguments)] // One call site; the parts are distinct.
pub(super) async fn run<F, Fut>(
    socket: WebSocket,
    settings: Settings,
    identity: Identity,
    ctx: RequestContext,
    mut drains: [watch::Receiver<bool>; 2],
    permit: LivePermit,
    app: F,
) -> End
where
    F: FnOnce(Session) -> Fut,
    Fut: Future<Output = ()>,
{
    let (out_tx, mut out_rx) = mpsc::channel::<String>(settings.send_queue);
    let (in_tx, in_rx) = mpsc::channel::<String>(INBOX);
    let overflow = Arc::new(Notify::new());
    let expires_at = identity.expires_at;
    let app = app(Session {
        identity,
        inbox: in_rx,
        outbox: Outbox {
            tx: out_tx,
            overflow: overflow.clone(),
        },
        ctx,
        call_budget: settings.call_budget,
    });
    let (mut sink, mut stream) = socket.split();
    let started = Instant::now();
    let since_start = move || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let heard = AtomicU64::new(0);
    let silence_limit = settings.ping_interval + settings.pong_timeout;
    let expires = async {
        match expires_at {
            Some(exp) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                tokio::time::sleep(Duration::from_secs(exp.saturating_sub(now))).await;
            }
            None => std::future::pending().await,
        }
    };
    let end = {
        let reader = async {
            loop {
                let message = match stream.next().await {
                    None => return End::Client,
                    Some(Err(e)) => return read_error(e),
                    Some(Ok(message)) => message,
                };
                heard.store(since_start(), Ordering::Release);
                match message {
                    Message::Text(text) => {
                        if in_tx.send(text.as_str().to_owned()).await.is_err() {
                            // The gateway's future no longer reads: it ended (and that ends the select).
                            std::future::pending::<()>().await;
                        }
                    }
                    Message::Binary(_) => return End::Binary,
                    Message::Close(_) => return End::Client,
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
        };
        let writer = async {
            let mut tick = tokio::time::interval_at(
                Instant::now() + settings.ping_interval,
                settings.ping_interval,
            );
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    text = out_rx.recv() => match text {
                        Some(text) => if sink.send(Message::Text(text.into())).await.is_err() {
                            return End::Client;
                        },
                        None => std::future::pending::<()>().await,
                    },
                    _ = tick.tick() => {
                        let silent = since_start().saturating_sub(heard.load(Ordering::Acquire));
                        if u128::from(silent) > silence_limit.as_millis() {
                            return End::PingTimeout;
                        }
                        if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                            return End::Client;
                        }
                    }
                }
            }
        };
        let [a, b] = &mut drains;
        tokio::select! {
            end = reader => end,
            end = writer => end,
            () = app => End::Done,
            () = overflow.notified() => End::SlowConsumer,
            () = expires => End::TokenExpired,
            () = drained(a) => End::Shutdown,
            () = drained(b) => End::Shutdown,
        }
    };
    drop(permit);
    // What was queued and not sent is dropped: the close frame goes next.
    drop(out_rx);
    if let Some((code, reason)) = end.close_frame() {
        tracing::debug!(code, reason, "closing a WebSocket connection");
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }));
        let _ = tokio::time::timeout(settings.pong_timeout, sink.send(frame)).await;
        // The closing handshake: the client's close frame (or its going away), so the TCP connection is not
        // reset under the bytes the client has still to read.
        let answered = async {
            while let Some(Ok(message)) = stream.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(settings.pong_timeout, answered).await;
    }
    let _ = tokio::time::timeout(settings.pong_timeout, sink.close()).await;
    end
}
