//! Memory of many idle WebSocket connections on bff-mobile's `GET /api/live`, alone in its binary so the
//! resident set it measures is its own (gateway, mocks and client all run in this process). The figure is
//! printed (`--nocapture`).

mod common;
#[path = "common/raw.rs"]
mod raw;
#[path = "common/ws.rs"]
mod ws;

use common::token;
use futures::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use ws::*;

/// Many idle connections stay bounded in memory: 1,000 open connections (each watching nothing, answering
/// pings), the resident set of the whole test process (gateway, mocks and client) measured before and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_idle_connections_stay_bounded() {
    const N: usize = 1_000;
    let (mocks, gw) = mobile_with(|c| {
        c.live.max_per_user = N;
        c.server.limits.max_connections_per_ip = 4 * N;
    })
    .await;
    let bearer = token(&mocks, "10", AUD, &[]).await;
    // Warm up (allocator, pools), then measure.
    let warm = open(&gw, &bearer).await;
    drop(warm);
    let before = raw::rss_kib();
    let mut open_conns = Vec::with_capacity(N);
    for _ in 0..N {
        open_conns.push(open(&gw, &bearer).await);
    }
    let after = raw::rss_kib();
    let per_conn = after.saturating_sub(before) as f64 / N as f64;
    eprintln!(
        "{N} idle WebSocket connections: RSS {before} KiB -> {after} KiB, {per_conn:.1} KiB per connection \
         (gateway + client sides)"
    );
    // Generous: a runaway buffer per connection (e.g. 128 KiB default read buffers) would exceed it.
    assert!(per_conn < 96.0, "{per_conn:.1} KiB per idle connection");
    // They are all alive: one more message on the last one is answered.
    let last = open_conns.last_mut().expect("connections");
    last.send(Message::text("{}")).await.expect("send");
    assert_eq!(next_json(last).await["type"], "watching");
}
