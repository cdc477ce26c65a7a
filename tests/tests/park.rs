//! Idle HTTP/1 keep-alive connections parked outside hyper (`[server.limits] park_idle_after_ms`), over real
//! sockets: a connection that idles past the park delay keeps serving on the same socket (several rounds),
//! pipelined requests (also one split across a park), requests with bodies, a WebSocket upgrade after a park,
//! the idle timeout still closing idle connections, and graceful shutdown closing parked connections at once.
//! Parks are observed through the process's park counter (`bff_connections_parks_total`), so the tests of
//! this binary run one at a time; the only time limits are hang guards.

mod common;
#[path = "common/raw.rs"]
mod raw;
#[path = "common/ws.rs"]
mod ws;

use std::time::Duration;

use bff_core::BffConfig;
use bff_core::conn::park::{parked_now, parks_total};
use bff_core::server::ConnectionLimits;
use common::*;
use futures::{SinkExt, StreamExt};
use raw::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The park delay of these tests.
const PARK_MS: u64 = 50;
/// Several park delays: a connection that can be parked is by then.
const PAST_PARK: Duration = Duration::from_millis(6 * PARK_MS);

/// The tests of this binary read the process-wide park counter: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits (hang guard: 20 s) until the process has parked `target` connections so far.
async fn parks_reach(target: u64) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while parks_total() < target {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "{target} parks within the hang guard, saw {}",
            parks_total()
        )
    });
}

const HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

fn parking(config: &mut BffConfig, header_read_timeout_ms: u64) {
    config.server.limits = ConnectionLimits {
        park_idle_after_ms: PARK_MS,
        header_read_timeout_ms,
        ..config.server.limits.clone()
    };
}

async fn web(header_read_timeout_ms: u64) -> (mock_services::MockStack, std::net::SocketAddr) {
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    parking(&mut config, header_read_timeout_ms);
    let addr = serve(bff_web::app, config).await;
    (mocks, addr)
}

/// Reads `count` complete responses (head + `content-length` body) from `stream`.
async fn responses(stream: &mut TcpStream, count: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let mut parsed = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while parsed.len() < count {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&out));
            out.extend_from_slice(&buf[..n]);
            loop {
                let text = String::from_utf8_lossy(&out).into_owned();
                let Some((head, rest)) = text.split_once("\r\n\r\n") else {
                    break;
                };
                let length = content_length(head);
                if rest.len() < length {
                    break;
                }
                parsed.push(format!("{head}\r\n\r\n{}", &rest[..length]));
                out.drain(..head.len() + 4 + length);
            }
        }
    })
    .await
    .expect("answers in time");
    parsed
}

/// A keep-alive connection idle past the park delay serves its next request on the same socket, round
/// after round, and pipelined requests sent after a park are all answered in order.
#[tokio::test]
async fn parked_connection_serves_again_on_the_same_socket() {
    let _serial = SERIAL.lock().await;
    let (_mocks, addr) = web(10_000).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut parks = parks_total();
    for round in 0..5 {
        let answer = exchange(&mut stream, HEALTHZ).await;
        assert_eq!(status_of(&answer), 200, "round {round}: {answer}");
        parks += 1;
        parks_reach(parks).await;
    }
    // A pipelined pair in one write, after a park.
    stream
        .write_all(format!("{HEALTHZ}GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let pair = responses(&mut stream, 2).await;
    assert_eq!(status_of(&pair[0]), 200, "{pair:?}");
    assert_eq!(status_of(&pair[1]), 401, "{pair:?}");
    parks_reach(parks + 1).await;
    assert_eq!(status_of(&exchange(&mut stream, HEALTHZ).await), 200);
}

/// A pipelined request whose head is split across a park: the bytes hyper had read but not parsed are
/// replayed to the next hyper connection, so the request is answered once its head is complete.
#[tokio::test]
async fn pipelined_head_split_across_a_park_is_kept() {
    let _serial = SERIAL.lock().await;
    let (_mocks, addr) = web(10_000).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let parks = parks_total();
    stream
        .write_all(format!("{HEALTHZ}GET /heal").as_bytes())
        .await
        .unwrap();
    let first = responses(&mut stream, 1).await;
    assert_eq!(status_of(&first[0]), 200, "{first:?}");
    parks_reach(parks + 1).await;
    stream
        .write_all(b"thz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let second = responses(&mut stream, 1).await;
    assert_eq!(status_of(&second[0]), 200, "{second:?}");
    assert!(second[0].contains("\"status\""), "{second:?}");
}

/// Requests with bodies the handler reads (bff-web's `POST /api/cart/items` with a real token): one whose
/// body arrives in two parts with a pause past the park delay between them (a connection in the middle of a
/// request is never parked), then idling past the park delay and another request on the same socket, then a
/// chunked one after another park.
#[tokio::test]
async fn requests_with_bodies_then_idle() {
    let _serial = SERIAL.lock().await;
    let (mocks, addr) = web(10_000).await;
    let bearer = token(&mocks, "5", "bff-web", &[]).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let parks = parks_total();
    let body = r#"{"product_id":"42","quantity":1}"#;
    let head = format!(
        "POST /api/cart/items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {bearer}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(format!("{head}{}", &body[..10]).as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(PAST_PARK).await;
    assert_eq!(parks_total(), parks, "parked in the middle of a request");
    let sized = exchange(&mut stream, &body[10..]).await;
    assert_eq!(status_of(&sized), 200, "{sized}");
    assert!(sized.contains("\"quantity\":1"), "{sized}");
    parks_reach(parks + 1).await;
    assert_eq!(status_of(&exchange(&mut stream, HEALTHZ).await), 200);
    parks_reach(parks + 2).await;
    let chunked = exchange(
        &mut stream,
        &format!(
            "POST /api/cart/items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {bearer}\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        ),
    )
    .await;
    assert_eq!(status_of(&chunked), 200, "{chunked}");
    assert!(chunked.contains("\"quantity\":2"), "{chunked}");
}

/// A connection that was parked still upgrades to a WebSocket (bff-mobile's `/api/live`), which then works.
#[tokio::test]
async fn websocket_upgrade_after_a_park() {
    let _serial = SERIAL.lock().await;
    let (mocks, gw) = ws::mobile_with(|config| parking(config, 10_000)).await;
    let bearer = token(&mocks, "10", ws::AUD, &[]).await;
    let ticket = ws::ticket(&gw, &bearer).await;
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let parks = parks_total();
    assert_eq!(status_of(&exchange(&mut stream, HEALTHZ).await), 200);
    parks_reach(parks + 1).await;
    let request = ws::ws_url(&gw, &format!("?ticket={ticket}"))
        .into_client_request()
        .unwrap();
    let (mut socket, response) = tokio::time::timeout(
        ws::WITHIN,
        tokio_tungstenite::client_async_with_config(request, stream, Some(ws::client_config())),
    )
    .await
    .expect("upgrade within the hang guard")
    .expect("upgraded on the parked connection");
    assert_eq!(response.status(), 101);
    socket
        .send(Message::text(
            json!({"watch": {"products": ["1"]}}).to_string(),
        ))
        .await
        .unwrap();
    let watching = tokio::time::timeout(ws::WITHIN, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
                    if value["type"] == "watching" {
                        return value;
                    }
                }
                Some(Ok(_)) => {}
                other => panic!("socket ended: {other:?}"),
            }
        }
    })
    .await
    .expect("watching within the hang guard");
    assert_eq!(watching["products"], json!(["1"]));
}

/// A parked connection is still closed once idle for the keep-alive bound (the header-read timeout), with
/// no answer written.
#[tokio::test]
async fn parked_connection_closes_after_the_idle_timeout() {
    let _serial = SERIAL.lock().await;
    let (_mocks, addr) = web(1_000).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let parks = parks_total();
    assert_eq!(status_of(&exchange(&mut stream, HEALTHZ).await), 200);
    parks_reach(parks + 1).await;
    let rest = read_to_close(&mut stream, Duration::from_secs(20))
        .await
        .expect("closed by the server");
    assert!(rest.is_empty(), "{rest}");
}

/// Graceful shutdown closes parked connections at once (they hold no request), long before their idle
/// timeout, and the server task ends.
#[tokio::test]
async fn shutdown_closes_parked_connections() {
    let _serial = SERIAL.lock().await;
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    parking(&mut config, 600_000);
    let parks = parks_total();
    let gw = start(bff_web::app, config).await;
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        assert_eq!(status_of(&exchange(&mut stream, HEALTHZ).await), 200);
        held.push(stream);
    }
    parks_reach(parks + 5).await;
    assert!(parked_now() >= 5, "{}", parked_now());
    tokio::time::timeout(Duration::from_secs(20), gw.shutdown())
        .await
        .expect("shutdown within the hang guard");
    for mut stream in held {
        // Without the drain closing them, parked connections would wait for their 10-minute idle timeout.
        let rest = read_to_close(&mut stream, Duration::from_secs(20))
            .await
            .expect("closed by the drain");
        assert!(rest.is_empty(), "{rest}");
    }
    assert_eq!(parked_now(), 0);
}

/// The park delay is validated (0 turns parking off); one not below the header-read timeout never parks,
/// since the idle connection is closed first.
#[test]
fn park_delay_is_validated() {
    let limits = |park_idle_after_ms| ConnectionLimits {
        park_idle_after_ms,
        header_read_timeout_ms: 5_000,
        ..ConnectionLimits::default()
    };
    assert!(limits(0).validate("server.limits").is_ok());
    assert_eq!(limits(0).park_idle_after(), None);
    assert_eq!(
        limits(1_000).park_idle_after(),
        Some(Duration::from_secs(1))
    );
    assert!(limits(60_000).validate("server.limits").is_ok());
    assert_eq!(limits(5_000).park_idle_after(), None);
    for bad in [5, 3_600_001] {
        let err = limits(bad).validate("server.limits").unwrap_err();
        assert!(
            err.to_string().contains("server.limits.park_idle_after_ms"),
            "{err}"
        );
    }
}
