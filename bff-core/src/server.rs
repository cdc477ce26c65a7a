//! Serving a router on a listener the caller binds (so tests use port 0), over HTTP/1.1 and HTTP/2 with the
//! connection-level protection of [`crate::conn`] (connection budget, first-bytes timeout, paced responses,
//! header and stream limits), TLS termination when configured ([`crate::tls`]), HTTP/1.1 upgrades (WebSocket,
//! see [`crate::live`]: an upgraded connection leaves hyper and closes on its own drain signal), idle HTTP/1
//! keep-alive connections parked outside hyper ([`crate::conn::park`]), and graceful shutdown: on the signal,
//! stop accepting, close parked and idle connections, let in-flight requests finish (bounded by a grace
//! period).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tower::ServiceExt;

use crate::conn::budget::{AcceptBackoff, ConnectionBudget};
use crate::conn::detect::Protocol;
use crate::conn::gate::Gated;
use crate::conn::pacing::{ConnWatch, Pacer, ResponseBudget};
use crate::conn::park::{ParkIo, ParkState, Parkable, Parked};
use crate::swap::Routes;
use crate::tls::ClientCertificate;

pub use crate::conn::ConnectionLimits;

/// Serves `router` (a `Router`, or a [`crate::swap::Swappable`] one) on `listener` with the default
/// [`ConnectionLimits`] until `shutdown` resolves, then drains in-flight requests for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    router: impl Into<Routes>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    serve_with_limits(
        listener,
        router,
        shutdown,
        grace,
        &ConnectionLimits::default(),
    )
    .await
}

/// [`serve`] with explicit connection limits.
pub async fn serve_with_limits(
    listener: TcpListener,
    router: impl Into<Routes>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    limits: &ConnectionLimits,
) -> std::io::Result<()> {
    serve_with_tls(listener, router, shutdown, grace, limits, None).await
}

/// [`serve_with_limits`], terminating TLS on every connection when `tls` is given (see [`crate::tls`]): the
/// handshake (bounded by its own timeout) comes first, then the connection is served like a plain one.
pub async fn serve_with_tls(
    listener: TcpListener,
    router: impl Into<Routes>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    limits: &ConnectionLimits,
    tls: Option<crate::tls::EdgeTls>,
) -> std::io::Result<()> {
    let router = router.into();
    let builders = crate::conn::builders(limits);
    let budget = ConnectionBudget::new(limits);
    let memory = ResponseBudget::new(limits.response_memory_budget_bytes);
    let timeouts = Timeouts {
        first_byte: limits.first_byte_timeout(),
        stall: limits.send_stall_timeout(),
        idle: limits.header_read_timeout(),
        park_after: limits.park_idle_after(),
    };
    let mut backoff = AcceptBackoff::default();
    // Every connection task holds a receiver: `closed()` resolves once the last one has ended.
    let (drain_tx, drain_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(backoff.failed()).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        backoff.succeeded();
        // Past a cap: a fixed answer and close, so the flood never reaches hyper or the file-descriptor limit.
        let permit = match budget.admit(peer.ip()) {
            Ok(permit) => permit,
            Err(refusal) => {
                tracing::debug!(%peer, ?refusal, "connection refused");
                crate::conn::budget::refuse(stream, refusal);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = Conn {
            peer,
            router: router.clone(),
            builders: builders.clone(),
            drain: drain_rx.clone(),
            memory: memory.clone(),
            timeouts,
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => conn.serve(stream, None).await,
                // Boxed: a TLS connection's larger state is not part of every plain connection's task.
                Some(tls) => {
                    Box::pin(async move {
                        if let Some((stream, client_cert)) = tls.handshake(stream, peer).await {
                            conn.serve(stream, client_cert).await;
                        }
                    })
                    .await;
                }
            }
        });
    }
    drop(listener);
    drop(drain_rx);
    tracing::info!("draining in-flight requests");
    let _ = drain_tx.send(true);
    if tokio::time::timeout(grace, drain_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; dropping remaining connections");
    }
    Ok(())
}

/// The connection-level timeouts of [`ConnectionLimits`].
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    first_byte: Duration,
    stall: Duration,
    /// How long a keep-alive connection may idle between requests (hyper's header-read timeout).
    idle: Duration,
    park_after: Option<Duration>,
}

/// What serving one accepted connection needs.
struct Conn {
    peer: SocketAddr,
    router: Routes,
    builders: crate::conn::Builders,
    /// Turns `true` when the server drains.
    drain: watch::Receiver<bool>,
    memory: Arc<ResponseBudget>,
    timeouts: Timeouts,
}

/// How one hyper connection ended.
enum Ended {
    /// Closed (by the client, by hyper, on error or stall, or upgraded and handed over).
    Closed,
    /// Closed on hyper's side while idle; the socket is parked.
    Parked,
}

impl Conn {
    /// Serves `io` (a TCP stream, or the TLS stream on top of it with the verified `client_cert`, if any)
    /// until it ends, stalls, or shutdown.
    async fn serve<I: ParkIo>(mut self, io: I, client_cert: Option<Arc<ClientCertificate>>) {
        let peer = self.peer;
        let pacer = Pacer::new(ConnWatch::new(), self.memory.clone());
        let watch = pacer.watch().clone();
        let park = Arc::new(ParkState::default());
        let (on_request, on_response) = (park.clone(), park.clone());
        let service = self
            .router
            .clone()
            .map_request(move |request: Request<hyper::body::Incoming>| {
                let mut request = request.map(|body| on_request.request(body));
                let extensions = request.extensions_mut();
                extensions.extend(crate::conn::extensions::with_room());
                extensions.insert(ConnectInfo::<SocketAddr>(peer));
                if let Some(cert) = &client_cert {
                    extensions.insert(cert.clone());
                }
                request
            })
            .map_response(move |response: axum::response::Response| {
                on_response.response(response.status());
                pacer.wrap(response)
            });
        let service = TowerToHyperService::new(service);
        // The first bytes (the whole HTTP/2 preface) within the timeout, or the connection is dropped.
        let (protocol, io) = match crate::conn::detect::detect(io, self.timeouts.first_byte).await {
            Ok(detected) => detected,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "no request within the first-bytes timeout");
                return;
            }
        };
        if protocol == Protocol::Http2 {
            let conn = self
                .builders
                .http2
                .serve_connection(TokioIo::new(io), service);
            let mut conn = Box::pin(conn);
            Box::pin(self.run(conn.as_mut(), &watch, None)).await;
            return;
        }
        let park_after = self.timeouts.park_after.filter(|_| io.can_park());
        let (mut io, mut replay, mut service) = (io, Bytes::new(), service);
        loop {
            let conn = self
                .builders
                .http1
                .serve_connection(
                    TokioIo::new(Parkable::new(io, replay, park.clone())),
                    service,
                )
                .with_upgrades();
            // Boxed: while parked, the connection task holds no hyper state.
            let mut conn = Box::pin(conn);
            let parking = park_after.map(|after| (after, park.as_ref()));
            // The driving state boxed too: a parked connection's task holds neither.
            let ended = Box::pin(self.run(conn.as_mut(), &watch, parking)).await;
            if let Ended::Closed = ended {
                return;
            }
            // Parked: hyper's side is closed; take the socket, the service and any unparsed bytes back.
            let Some(parts) = Pin::into_inner(conn).into_parts() else {
                return;
            };
            park.set_parking(false);
            let (inner, unparsed) = parts.io.into_inner().into_inner(parts.read_buf);
            (io, replay, service) = (inner, unparsed, parts.service);
            let _parked = Parked::enter();
            // hyper's state is dropped: have the allocator give the freed pages back (once per burst).
            crate::conn::release::collect_soon();
            if replay.is_empty() && !self.parked(&io, &watch).await {
                return;
            }
        }
    }

    /// Drives one hyper connection until it ends; with `parking` (the idle delay and the connection's
    /// state), closes hyper's side once the connection has been quiet that long and reports it parked.
    async fn run<C>(
        &mut self,
        mut conn: Pin<&mut C>,
        watch: &ConnWatch,
        parking: Option<(Duration, &ParkState)>,
    ) -> Ended
    where
        C: GracefulConn,
    {
        let peer = self.peer;
        let mut ticks = parking.map(|(after, _)| {
            let mut ticks = tokio::time::interval_at(Instant::now() + after, after);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            ticks
        });
        let served = parking.map_or(0, |(_, state)| state.requests());
        let mut last = parking.map_or(0, |(_, state)| state.activity());
        let mut closing = false;
        loop {
            // The connection first, without the random branch order; the rare events beside it wait in one
            // gated future, so the several wake-ups of every request poll only the connection (measured:
            // ~2k instructions per request otherwise, bench/notes.md).
            let event = Gated::new(next_event(
                &mut ticks,
                &mut self.drain,
                watch,
                self.timeouts.stall,
                closing,
            ));
            tokio::select! {
                biased;
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                        return Ended::Closed;
                    }
                    return match parking {
                        Some((_, state)) if state.parking() => Ended::Parked,
                        _ => Ended::Closed,
                    };
                }
                event = event => match event {
                    Event::Tick => {
                        let Some((_, state)) = parking else { continue };
                        if !state.quiet(&mut last, served, watch.finished()) {
                            continue;
                        }
                        state.set_parking(true);
                        conn.as_mut().graceful_shutdown();
                        // Idle in hyper: it closes at once. Otherwise (not expected) it finishes its exchange
                        // with keep-alive off and closes the connection for real.
                        match std::future::poll_fn(|cx| Poll::Ready(conn.as_mut().poll(cx))).await {
                            Poll::Ready(Ok(())) => return Ended::Parked,
                            Poll::Ready(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "connection ended with an error");
                                return Ended::Closed;
                            }
                            Poll::Pending => {
                                state.set_parking(false);
                                closing = true;
                            }
                        }
                    }
                    Event::Drain => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    Event::Stalled => {
                        tracing::info!(%peer, "closing a connection that stopped reading its responses");
                        return Ended::Closed;
                    }
                },
            }
        }
    }

    /// Waits, without a buffer, for the parked connection's next bytes: `true` once they arrived; `false`
    /// when the client closed, the idle time since the last answer reached the keep-alive bound, or the
    /// server drains.
    async fn parked<I: ParkIo>(&mut self, io: &I, watch: &ConnWatch) -> bool {
        let deadline = watch.last_progress() + self.timeouts.idle;
        tokio::select! {
            ready = std::future::poll_fn(|cx| io.poll_peek(cx)) => matches!(ready, Ok(true)),
            () = tokio::time::sleep_until(deadline) => false,
            () = drained(&mut self.drain) => false,
        }
    }
}

/// A hyper connection that can be asked to finish gracefully (HTTP/1 with upgrades, HTTP/2).
trait GracefulConn: Future<Output = hyper::Result<()>> {
    /// Finish the exchange in progress (if any), then close.
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S, B> GracefulConn for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http1::UpgradeableConnection::graceful_shutdown(self);
    }
}

impl<I, S, B, E> GracefulConn for hyper::server::conn::http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http2::Connection::graceful_shutdown(self);
    }
}

/// What a connection task waits for beside its hyper connection.
enum Event {
    /// The park interval ticked.
    Tick,
    /// The server drains.
    Drain,
    /// A response waited too long for the client to read.
    Stalled,
}

/// The next [`Event`]; once `closing`, only a stall (the connection is already finishing).
async fn next_event(
    ticks: &mut Option<tokio::time::Interval>,
    drain: &mut watch::Receiver<bool>,
    watch: &ConnWatch,
    stall: Duration,
    closing: bool,
) -> Event {
    tokio::select! {
        biased;
        () = watch.stalled(stall) => Event::Stalled,
        () = drained(drain), if !closing => Event::Drain,
        () = tick(ticks), if !closing => Event::Tick,
    }
}

/// Resolves once the server drains (or is gone).
async fn drained(drain: &mut watch::Receiver<bool>) {
    let _ = drain.wait_for(|draining| *draining).await.map(|_| ());
}

/// The next tick, or never without ticks.
async fn tick(ticks: &mut Option<tokio::time::Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; draining");
}
