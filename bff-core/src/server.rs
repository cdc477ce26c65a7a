//! Serving a router on a listener the caller binds (so tests use port 0), over HTTP/1.1 and HTTP/2 with the
//! connection-level protection of [`crate::conn`] (connection budget, first-bytes timeout, paced responses,
//! header and stream limits), and graceful shutdown: on the signal, stop accepting, let in-flight requests
//! finish (bounded by a grace period).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::conn::budget::{AcceptBackoff, ConnectionBudget};
use crate::conn::pacing::{ConnWatch, Pacer, ResponseBudget};

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
        let pacer = Pacer::new(ConnWatch::new(), memory.clone());
        let watch = pacer.watch().clone();
        let service = router
            .clone()
            .map_request(move |mut request: Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(peer));
                request
            })
            .map_response(move |response| pacer.wrap(response));
        let (builder, watcher) = (builder.clone(), graceful.watcher());
        tokio::spawn(async move {
            let _permit = permit;
            // The first bytes (the whole HTTP/2 preface) within the timeout, or the connection is dropped.
            let io = match crate::conn::detect::detect(stream, first_byte).await {
                Ok((_, io)) => io,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "no request within the first-bytes timeout");
                    return;
                }
            };
            let connection = builder
                .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
                .into_owned();
            tokio::select! {
                result = watcher.watch(connection) => if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                },
                () = watch.stalled(stall) => {
                    tracing::info!(%peer, "closing a connection that stopped reading its responses");
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
