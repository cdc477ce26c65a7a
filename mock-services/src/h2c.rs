//! The gRPC listener's serve loop: HTTP/2 over cleartext (prior knowledge, as gRPC clients speak it; HTTP/1.1
//! still answers `GET /healthz`), no Nagle delay, and room for [`MAX_CONCURRENT_STREAMS`] streams per connection, so one gateway connection
//! can carry thousands of open `WatchOrder` streams (hyper's default of 200 would make the 201st wait).

use std::io;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::state::Shutdown;

/// Concurrent streams a client may open on one connection (`SETTINGS_MAX_CONCURRENT_STREAMS`).
pub const MAX_CONCURRENT_STREAMS: u32 = 100_000;

/// Serves `app` on `listener` until `shutdown`, then lets open connections finish gracefully.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    mut shutdown: Shutdown,
) -> io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
    let graceful = GracefulShutdown::new();
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                // Out of file descriptors and the like: the listener stays, and tries again shortly.
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = shutdown.wait() => break,
        };
        // HTTP/2 writes a response as several small frames (headers, data, trailers).
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let conn = builder.serve_connection(TokioIo::new(tcp), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    graceful.shutdown().await;
    Ok(())
}
