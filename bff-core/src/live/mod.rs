//! WebSocket connections to clients, generic over what they carry (see `docs/websocket.md`). A client
//! first asks the gateway's ticket endpoint for a ticket with its bearer token ([`Live::ticket`]), then
//! opens the WebSocket route with `?ticket=`: a browser cannot set `Authorization` on a WebSocket, and a
//! long-lived token never appears in a URL. The edge authenticates such a route by its ticket instead of a
//! bearer credential ([`Live::authenticate`]: `Origin` against the allow-list, 403 `origin_not_allowed`;
//! the ticket redeemed once, 401 otherwise). The handler answers [`Live::upgrade`] with its own future,
//! which is handed a [`Session`]: the client's text messages and a bounded [`Outbox`]. Core adds what every
//! connection needs (`socket.rs`): the per-user limit (429 `too_many_connections` at the upgrade), the
//! message size limit (1009), pings and the silence timeout, the slow consumer closed (1013) instead of
//! buffered, the end at the token's `exp` (1008) and on shutdown (1001). Settings: [`LiveConfig`] (`[live]`).

pub mod config;
mod socket;
mod ticket;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::watch;

pub use config::LiveConfig;
pub use socket::{End, Outbox, Session};

use crate::auth::Identity;
use crate::context::RequestContext;
use crate::error::BffError;
use crate::metrics::Metrics;
use crate::per_user::{PerUser, Slot};

/// Read and write buffer of one connection: small, so thousands of idle connections stay cheap (a larger
/// message grows the buffer up to `live.max_message_bytes`).
const BUFFER_BYTES: usize = 4 * 1024;

/// The answer of a ticket endpoint: `{"ticket": "..."}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Ticket {
    /// Opens the WebSocket once (`?ticket=`), within `live.ticket_ttl_s` seconds.
    pub ticket: String,
}

/// The WebSocket connections of one gateway: tickets, open connections per caller, the drain signal.
#[derive(Debug)]
pub struct Live {
    config: LiveConfig,
    origins: Vec<String>,
    call_budget: Duration,
    tickets: ticket::Tickets,
    open: Arc<PerUser>,
    drain: watch::Sender<bool>,
    metrics: Arc<Metrics>,
}

/// One admitted connection of a caller: counted until dropped (when the gateway decides the connection
/// ends).
#[derive(Debug)]
pub struct LivePermit {
    _slot: Slot,
}

impl Live {
    /// The connections of a gateway configured by `config`: origins from `live.allowed_origins`, else
    /// `cors_origins`; downstream calls of a connection get `call_budget` each; connections are counted in
    /// `metrics` (`bff_live_opened_total`, `bff_live_closed_total{reason}`).
    pub fn new(
        config: &LiveConfig,
        cors_origins: &[String],
        call_budget: Duration,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let origins = match config.allowed_origins.is_empty() {
            true => cors_origins.to_vec(),
            false => config.allowed_origins.clone(),
        };
        Arc::new(Self {
            config: config.clone(),
            origins,
            call_budget,
            tickets: ticket::Tickets::new(
                Duration::from_secs(config.ticket_ttl_s),
                config.max_tickets,
            ),
            open: PerUser::new(config.max_per_user),
            drain: watch::channel(false).0,
            metrics,
        })
    }

    /// The settings.
    pub fn config(&self) -> &LiveConfig {
        &self.config
    }

    /// A single-use ticket for `identity` (the bearer-authenticated caller of the ticket endpoint), or 503
    /// `overloaded` when `live.max_tickets` are outstanding.
    pub fn ticket(&self, identity: &Identity) -> Result<Ticket, BffError> {
        Ok(Ticket {
            ticket: self.tickets.issue(identity)?,
        })
    }

    /// The caller of a WebSocket route, from its request: an `Origin` not on the allow-list is 403
    /// `origin_not_allowed` (checked first, so a refused origin does not spend the ticket); without a
    /// `ticket` query parameter naming an unused, unexpired ticket, 401.
    pub fn authenticate(&self, headers: &HeaderMap, uri: &Uri) -> Result<Identity, BffError> {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let allowed = origin
                .to_str()
                .is_ok_and(|o| self.origins.iter().any(|a| a == o));
            if !allowed {
                return Err(BffError::Refused {
                    status: StatusCode::FORBIDDEN,
                    code: "origin_not_allowed",
                    detail: "this origin may not open a WebSocket here",
                });
            }
        }
        let ticket = uri.query().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "ticket")
                .map(|(_, v)| v.into_owned())
        });
        ticket
            .filter(|t| !t.is_empty() && t.len() <= 128)
            .and_then(|t| self.tickets.redeem(&t))
            .ok_or(BffError::Unauthenticated {
                reason: "missing, unknown, expired or already used ticket",
            })
    }

    /// Admits one more connection of `identity`, or 429 `too_many_connections` when the caller has
    /// `live.max_per_user` open already.
    pub fn admit(self: &Arc<Self>, identity: &Identity) -> Result<LivePermit, BffError> {
        let slot = self
            .open
            .admit(&identity.subject)
            .ok_or(BffError::Refused {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "too_many_connections",
                detail: "too many open WebSocket connections; close one first",
            })?;
        Ok(LivePermit { _slot: slot })
    }

    /// Open connections of the caller `subject`.
    pub fn open_of(&self, subject: &str) -> usize {
        self.open.open_of(subject)
    }

    /// Closes this gateway's connections as on shutdown (1001 `shutdown`).
    pub fn drain(&self) {
        self.drain.send_replace(true);
    }

    /// Completes the upgrade of the caller of `ctx` (429 `too_many_connections` beyond the per-user limit)
    /// and runs `app` with the connection's [`Session`] until the connection ends (see the module docs).
    pub fn upgrade<F, Fut>(
        self: &Arc<Self>,
        upgrade: WebSocketUpgrade,
        ctx: &RequestContext,
        app: F,
    ) -> Result<Response, BffError>
    where
        F: FnOnce(Session) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let identity = ctx.require_identity()?.clone();
        let permit = self.admit(&identity)?;
        let settings = socket::Settings {
            ping_interval: Duration::from_millis(self.config.ping_interval_ms),
            pong_timeout: Duration::from_millis(self.config.pong_timeout_ms),
            send_queue: self.config.send_queue,
            call_budget: self.call_budget,
        };
        let drains = [self.drain.subscribe(), crate::streams::shutdown_receiver()];
        let ctx = ctx.clone();
        let max = self.config.max_message_bytes;
        let live = self.clone();
        let response = upgrade
            .read_buffer_size(BUFFER_BYTES)
            .write_buffer_size(0)
            .max_message_size(max)
            .max_frame_size(max)
            .on_upgrade(move |socket| async move {
                live.metrics
                    .counter("bff_live_opened_total", "WebSocket connections opened", &[])
                    .inc();
                let end = socket::run(socket, settings, identity, ctx, drains, permit, app).await;
                tracing::debug!(?end, "WebSocket connection ended");
                live.metrics
                    .counter(
                        "bff_live_closed_total",
                        "WebSocket connections closed, by reason",
                        &[("reason", end.label())],
                    )
                    .inc();
            });
        Ok(response.into_response())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            subject: "7".into(),
            client: "mobile".into(),
            scopes: vec![],
            partner: None,
            expires_at: None,
        }
    }

    fn live(origins: &[&str]) -> Arc<Live> {
        let cors: Vec<String> = origins.iter().map(|o| (*o).to_owned()).collect();
        Live::new(
            &LiveConfig::default(),
            &cors,
            Duration::from_secs(1),
            Arc::default(),
        )
    }

    /// An unlisted origin is refused before the ticket is spent; no origin (a native app) is allowed; the
    /// ticket works once.
    #[test]
    fn origin_then_single_use_ticket() {
        let live = live(&["https://app.example.com"]);
        let ticket = live.ticket(&identity()).expect("ticket").ticket;
        let uri: Uri = format!("/live?ticket={ticket}").parse().unwrap();
        let mut evil = HeaderMap::new();
        evil.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(matches!(
            live.authenticate(&evil, &uri),
            Err(BffError::Refused {
                code: "origin_not_allowed",
                ..
            })
        ));
        let mut good = HeaderMap::new();
        good.insert(header::ORIGIN, "https://app.example.com".parse().unwrap());
        assert_eq!(live.authenticate(&good, &uri).expect("once").subject, "7");
        assert!(matches!(
            live.authenticate(&HeaderMap::new(), &uri),
            Err(BffError::Unauthenticated { .. })
        ));
        let missing: Uri = "/live".parse().unwrap();
        assert!(live.authenticate(&HeaderMap::new(), &missing).is_err());
    }

    /// The per-user limit refuses one more connection and frees a slot when a permit is dropped.
    #[test]
    fn per_user_limit() {
        let live = Live::new(
            &LiveConfig {
                max_per_user: 1,
                ..Default::default()
            },
            &[],
            Duration::from_secs(1),
            Arc::default(),
        );
        let permit = live.admit(&identity()).expect("first");
        assert!(matches!(
            live.admit(&identity()),
            Err(BffError::Refused {
                code: "too_many_connections",
                ..
            })
        ));
        drop(permit);
        assert_eq!(live.open_of("7"), 0);
        assert!(live.admit(&identity()).is_ok());
    }

    /// Over a real listener (the server's pacing and upgrade path) and a real client: messages flow both
    /// ways through the gateway's future, and draining closes the connection with 1001 `shutdown` and frees
    /// the caller's slot.
    #[tokio::test]
    async fn echo_then_drain_closes_1001() {
        use axum::Extension;
        use axum::extract::State;
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;

        async fn echo(
            State(live): State<Arc<Live>>,
            Extension(ctx): Extension<RequestContext>,
            upgrade: WebSocketUpgrade,
        ) -> Response {
            let answer = live.upgrade(upgrade, &ctx, |mut session: Session| async move {
                while let Some(text) = session.inbox.recv().await {
                    session.outbox.send(format!("echo {text}"));
                }
            });
            answer.unwrap_or_else(IntoResponse::into_response)
        }

        let live = live(&[]);
        let ctx = RequestContext::new(
            "rid".into(),
            crate::trace::TraceContext::from_headers(&HeaderMap::new()),
            Some(identity()),
            tokio::time::Instant::now() + Duration::from_secs(5),
        );
        let router = axum::Router::new()
            .route("/ws", axum::routing::get(echo))
            .layer(Extension(ctx))
            .with_state(live.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(crate::server::serve(
            listener,
            router,
            std::future::pending(),
            Duration::from_secs(1),
        ));
        let (mut ws, response) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .expect("upgraded");
        assert_eq!(response.status(), 101);
        ws.send(Message::text("hi")).await.unwrap();
        let hang_guard = Duration::from_secs(10);
        let echoed = tokio::time::timeout(hang_guard, ws.next()).await.unwrap();
        assert_eq!(echoed.unwrap().unwrap(), Message::text("echo hi"));
        assert_eq!(live.open_of("7"), 1);
        live.drain();
        let closed = tokio::time::timeout(hang_guard, ws.next()).await.unwrap();
        match closed {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(
                    (u16::from(frame.code), frame.reason.as_str()),
                    (1001, "shutdown")
                );
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
        assert_eq!(live.open_of("7"), 0);
        // The client answers the close frame; the gateway then counts the connection as closed.
        let _ =
            tokio::time::timeout(hang_guard, async { while ws.next().await.is_some() {} }).await;
        let mut metrics = String::new();
        for _ in 0..500 {
            metrics = live.metrics.render();
            if metrics.contains("bff_live_closed_total{reason=\"shutdown\"} 1") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(metrics.contains("bff_live_opened_total 1"), "{metrics}");
        assert!(
            metrics.contains("bff_live_closed_total{reason=\"shutdown\"} 1"),
            "{metrics}"
        );
    }
}
