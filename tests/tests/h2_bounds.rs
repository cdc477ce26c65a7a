//! Hardening class 2, bounded HTTP/2, alone in its binary so the RSS it measures is its own (gateway, mocks and
//! client all run in this process), with the allocator of the gateway binaries (mimalloc), so "memory returned
//! after" means what it means in production. Figures are printed (`--nocapture`).

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::net::SocketAddr;
use std::time::Duration;

use bff_core::server::ConnectionLimits;
use common::*;
use raw::*;
use tokio::net::TcpStream;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A hand-driven HTTP/2 connection with a zero initial window (the client never reads a body byte, but
/// answers PINGs).
async fn slow_reader(addr: SocketAddr, streams: usize) -> (tokio::task::JoinHandle<()>, Vec<u16>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, bytes::Bytes>(tcp)
        .await
        .unwrap();
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.unwrap();
    let mut pending = Vec::new();
    for _ in 0..streams {
        let request = axum::http::Request::get(format!("http://{addr}/openapi.json"))
            .body(())
            .unwrap();
        let (response, _) = client.send_request(request, true).unwrap();
        pending.push(response);
        client = client.ready().await.unwrap();
    }
    let mut statuses = Vec::new();
    for response in pending {
        // Headers are not flow-controlled: every stream gets its status, and keeps its body unsent.
        match tokio::time::timeout(Duration::from_secs(20), response).await {
            Ok(Ok(r)) => {
                statuses.push(r.status().as_u16());
                // Hold the body (never read, never released).
                std::mem::forget(r.into_body());
            }
            _ => statuses.push(0),
        }
    }
    (driver, statuses)
}

/// Class 2, bounded HTTP/2: 40 connections × 64 streams of `/openapi.json` with a zero window (2,560 bodies
/// nobody reads) hold at most the response memory budget (past it: 503), and every such connection is closed
/// by the gateway after the send-stall timeout; RSS is bounded during and after.
#[tokio::test]
async fn http2_slow_readers_are_bounded_and_closed() {
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    config.server.limits = ConnectionLimits {
        send_stall_timeout_ms: 3_000,
        response_memory_budget_bytes: 8 * 1024 * 1024,
        ..ConnectionLimits::default()
    };
    let addr = serve(bff_web::app, config).await;
    let size = get(&format!("http://{addr}/openapi.json"), &[])
        .await
        .body
        .len();
    let rss_before = rss_kib();
    let attacks = (0..40).map(|_| slow_reader(addr, 64));
    let connections = futures::future::join_all(attacks).await;
    let rss_during = rss_kib();
    let statuses: Vec<u16> = connections.iter().flat_map(|(_, s)| s.clone()).collect();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 503).count();
    // Every connection is closed by the gateway (the client side never closes).
    let mut closed = 0;
    for (driver, _) in connections {
        if tokio::time::timeout(Duration::from_secs(30), driver)
            .await
            .is_ok()
        {
            closed += 1;
        }
    }
    // Let the allocator settle, then measure what stayed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = rss_kib();
    eprintln!(
        "HTTP/2 slow readers: 40 connections x 64 streams of {size} bytes: {ok} answered 200 (held), {refused} \
         answered 503 (budget 8 MiB); {closed}/40 closed by the gateway; RSS before {rss_before} KiB, during \
         {rss_during} KiB, after {rss_after} KiB"
    );
    // A stream still being opened when its connection was closed for stalling has no status (0).
    assert!(
        ok > 0 && refused > 0,
        "the budget admits some and refuses the rest: {ok} / {refused}"
    );
    assert_eq!(closed, 40, "non-reading connections are closed");
    assert!(
        rss_during < rss_before + 96 * 1024,
        "RSS during the attack bounded"
    );
    assert!(
        rss_after < rss_before + 48 * 1024,
        "RSS after bounded: {rss_before} → {rss_after}"
    );
    let health = get(&format!("http://{addr}/healthz"), &[]).await;
    assert_eq!(health.status, 200);
}
