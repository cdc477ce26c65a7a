//! Hardening class 1, the connection budget, alone in its binary so the file descriptors and RSS it measures
//! are its own (gateway, mocks and client all run in this process). Figures are printed (`--nocapture`).

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::time::Duration;

use bff_core::server::ConnectionLimits;
use common::*;
use raw::*;
use tokio::io::AsyncWriteExt;

/// Class 1, connection budget: silent connections and half HTTP/2 prefaces are closed after the first-bytes
/// timeout; past the per-IP cap a connection gets 429 `too_many_connections`, past the global cap 503
/// `overloaded`, both closed at once; an established keep-alive client and other addresses keep being
/// served; file descriptors return to their baseline once the flood is gone.
#[tokio::test]
async fn connection_budget_bounds_silent_and_flooding_clients() {
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    config.server.limits = ConnectionLimits {
        first_byte_timeout_ms: 500,
        max_connections: 40,
        max_connections_per_ip: 20,
        ..ConnectionLimits::default()
    };
    let addr = serve(bff_web::app, config).await;

    // An established keep-alive client.
    let mut established = connect_from([127, 0, 0, 1], addr).await;
    let first = exchange(&mut established, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status_of(&first), 200, "{first}");
    let (fds_before, rss_before) = (open_fds(), rss_kib());

    // Silent connections (and one half HTTP/2 preface) from one address: 20 admitted, then closed by the
    // first-bytes timeout; the 10 past the per-IP cap answered 429 at once.
    let mut silent = Vec::new();
    for _ in 0..30 {
        silent.push(connect_from([127, 0, 0, 5], addr).await);
    }
    let mut half_preface = connect_from([127, 0, 0, 6], addr).await;
    half_preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let mut refused_per_ip = 0;
    for stream in &mut silent {
        let answer = read_to_close(stream, Duration::from_secs(10))
            .await
            .expect("every silent connection is closed by the gateway");
        match status_of(&answer) {
            429 => {
                assert!(answer.contains("too_many_connections"), "{answer}");
                refused_per_ip += 1;
            }
            _ => assert!(answer.is_empty(), "{answer}"),
        }
    }
    assert_eq!(refused_per_ip, 10);
    assert_eq!(
        read_to_close(&mut half_preface, Duration::from_secs(10)).await,
        Some(String::new()),
        "a half HTTP/2 preface is closed"
    );

    // A flood of connections that started a request head (held by the header read timeout) fills the
    // global cap: 20 + 19 + the established one = 40.
    let mut flood = Vec::new();
    for (from, n) in [([127, 0, 0, 2], 20), ([127, 0, 0, 3], 19)] {
        for _ in 0..n {
            let mut s = connect_from(from, addr).await;
            s.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
            flood.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut past_cap = connect_from([127, 0, 0, 4], addr).await;
    let answer = read_to_close(&mut past_cap, Duration::from_secs(10))
        .await
        .expect("closed at once");
    assert_eq!(status_of(&answer), 503, "{answer}");
    assert!(answer.contains("\"code\":\"overloaded\""), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"));
    let fds_during = open_fds();
    // The established client is still served under the flood.
    let again = exchange(&mut established, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status_of(&again), 200, "{again}");

    // The flood leaves: its places, and file descriptors, come back.
    drop((flood, silent, half_preface, past_cap));
    let recovered = eventually(Duration::from_secs(10), || open_fds() <= fds_before + 1).await;
    let mut after = connect_from([127, 0, 0, 4], addr).await;
    let served = exchange(&mut after, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status_of(&served), 200, "{served}");
    let (fds_after, rss_after) = (open_fds(), rss_kib());
    eprintln!(
        "connection budget: held 40 (cap), refused 10 per-IP + 1 global; fds before {fds_before}, during \
         {fds_during}, after {fds_after}; RSS before {rss_before} KiB, after {rss_after} KiB"
    );
    assert!(
        recovered,
        "fds back to baseline: {fds_before} → {fds_after}"
    );
    assert!(rss_after < rss_before + 32 * 1024, "RSS bounded");
}
