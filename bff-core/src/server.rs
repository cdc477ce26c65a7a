//! Serving a router on a listener the caller binds (so tests use port 0), over HTTP/1.1 and HTTP/2 with the
//! connection-level protection of [`crate::conn`] (connection budget, first-bytes timeout, paced responses,
//! header and stream limits), TLS termination when configured ([`crate::tls`]), HTTP/1.1 upgrades (WebSocket,
//! see [`crate::live`]: an upgraded connection leaves hyper and closes on its own drain signal), and graceful
//! shutdown: on the signal, stop accepting, let in-flight requests finish (bounded by a grace period).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::conn::budget::{AcceptBackoff, ConnectionBudget};
use crate::conn::pacing::{ConnWatch, Pacer, ResponseBudget};
use crate::tls::ClientCertificate;

pub use crate::conn::ConnectionLimits;

/// Serves `router` on `listener` with the default [`ConnectionLimits`] until `shutdown` resolves, then drains
/// in-flight requests for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
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
    router: Router,
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
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    limits: &ConnectionLimits,
    tls: Option<crate::tls::EdgeTls>,
) -> std::io::Result<()> {
    let builder = crate::conn::builder(limits);
    let budget = ConnectionBudget::new(limits);
    let memory = ResponseBudget::new(limits.response_memory_budget_bytes);
    let (first_byte, stall) = (limits.first_byte_timeout(), limits.send_stall_timeout());
    let mut backoff = AcceptBackoff::default();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
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
            builder: builder.clone(),
            watcher: graceful.watcher(),
            memory: memory.clone(),
            first_byte,
            stall,
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => conn.serve(stream, None).await,
                Some(tls) => {
                    if let Some((stream, client_cert)) = tls.handshake(stream, peer).await {
                        conn.serve(stream, client_cert).await;
                    }
                }
            }
        });
    }
    drop(listener);
    tracing::info!("draining in-flight requests");
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; dropping remaining connections");
    }
    Ok(())
}

/// What serving one accepted connection needs.
struct Conn {
    peer: SocketAddr,
    router: Router,
    builder: hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    memory: Arc<ResponseBudget>,
    first_byte: Duration,
    stall: Duration,
}

impl Conn {
    /// Serves `io` (a TCP stream, or the TLS stream on top of it with the verified `client_cert`, if any)
    /// until it ends, stalls, or shutdown.
    async fn serve<I>(self, io: I, client_cert: Option<Arc<ClientCertificate>>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = self.peer;
        let pacer = Pacer::new(ConnWatch::new(), self.memory);
        let watch = pacer.watch().clone();
        let service = self
            .router
            .map_request(move |mut request: Request<hyper::body::Incoming>| {
                let extensions = request.extensions_mut();
                extensions.insert(ConnectInfo::<SocketAddr>(peer));
                if let Some(cert) = &client_cert {
                    extensions.insert(cert.clone());
                }
                request
            })
            .map_response(move |response| pacer.wrap(response));
        // The first bytes (the whole HTTP/2 preface) within the timeout, or the connection is dropped.
        let io = match crate::conn::detect::detect(io, self.first_byte).await {
            Ok((_, io)) => io,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "no request within the first-bytes timeout");
                return;
            }
        };
        let connection = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service))
            .into_owned();
        tokio::select! {
            result = self.watcher.watch(connection) => if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            },
            () = watch.stalled(self.stall) => {
                tracing::info!(%peer, "closing a connection that stopped reading its responses");
            }
        }
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
