//! WebSocket client helpers of the `GET /api/live` tests (bff-mobile): tickets, upgrades with a real
//! tokio-tungstenite client, refusals read as plain HTTP, messages and close frames.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use bff_core::BffConfig;
use futures::StreamExt;
use mock_services::MockStack;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::{RunningGateway, client, config_for, mocks, start};

/// The gateway's audience.
pub const AUD: &str = "bff-mobile";
/// A hang guard, never a timing assertion.
pub const WITHIN: Duration = Duration::from_secs(20);

/// A client connection.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Mocks + bff-mobile without rate limits (tests open many connections), with `tweak` applied.
pub async fn mobile_with(tweak: impl FnOnce(&mut BffConfig)) -> (MockStack, RunningGateway) {
    let mocks = mocks().await;
    let mut config = config_for(bff_mobile::defaults(), &mocks);
    config.rate_limit.policies.clear();
    tweak(&mut config);
    let gw = start(bff_mobile::app, config).await;
    (mocks, gw)
}

/// A ticket from `POST /api/live/ticket` with `bearer`.
pub async fn ticket(gw: &RunningGateway, bearer: &str) -> String {
    let response = client()
        .post(format!("{}/api/live/ticket", gw.url))
        .bearer_auth(bearer)
        .send()
        .await
        .expect("ticket");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.expect("json");
    body["ticket"].as_str().expect("ticket").to_owned()
}

pub fn ws_url(gw: &RunningGateway, query: &str) -> String {
    format!("{}/api/live{query}", gw.url.replacen("http://", "ws://", 1))
}

/// Small buffers on the client side too, so the memory figure is the gateway's.
pub fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// Opens `GET /api/live?ticket=` (with `origin`, if any).
pub async fn open_with(
    gw: &RunningGateway,
    ticket: &str,
    origin: Option<&str>,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut request = ws_url(gw, &format!("?ticket={ticket}"))
        .into_client_request()
        .expect("request");
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().expect("origin"));
    }
    let connected = tokio::time::timeout(
        WITHIN,
        tokio_tungstenite::connect_async_with_config(request, Some(client_config()), false),
    )
    .await
    .expect("upgrade within the hang guard");
    connected.map(|(ws, _)| ws)
}

/// A ticket for `bearer`, then the connection.
pub async fn open(gw: &RunningGateway, bearer: &str) -> Ws {
    let ticket = ticket(gw, bearer).await;
    open_with(gw, &ticket, None).await.expect("upgraded")
}

/// The upgrade request as plain HTTP (`query` appended to `/api/live`), for refusals: status and problem.
pub async fn upgrade_answer(
    gw: &RunningGateway,
    query: &str,
    headers: &[(&str, &str)],
) -> (u16, Value, String) {
    let mut request = client()
        .get(format!("{}/api/live{query}", gw.url))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("upgrade request");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = match status {
        101 => Value::Null,
        _ => response.json().await.unwrap_or(Value::Null),
    };
    (status, body, content_type)
}

/// The next text message as JSON (pings and pongs skipped); panics on anything else.
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(WITHIN, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return serde_json::from_str(&text).expect("json"),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// Text messages until one matches `pred` (returned); panics when the connection ends first.
pub async fn until(ws: &mut Ws, pred: impl Fn(&Value) -> bool) -> Value {
    loop {
        let message = next_json(ws).await;
        if pred(&message) {
            return message;
        }
    }
}

/// Reads to the gateway's close frame: its code and reason, with the number of text messages before it.
pub async fn close_of(ws: &mut Ws) -> Option<(u16, String, usize)> {
    let mut texts = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(60), ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                return Some((frame.code.into(), frame.reason.to_string(), texts));
            }
            Ok(Some(Ok(Message::Text(_)))) => texts += 1,
            Ok(Some(Ok(_))) => {}
            _ => return None,
        }
    }
}

/// Polls until an upgrade of `bearer` is admitted (101): a connection slot of the caller was freed.
pub async fn slot_freed(gw: &RunningGateway, bearer: &str, tries: usize) -> bool {
    for _ in 0..tries {
        let t = ticket(gw, bearer).await;
        if upgrade_answer(gw, &format!("?ticket={t}"), &[]).await.0 == 101 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The first `order_status` and `stock` messages, which arrive in either order after a watch of both (other
/// messages skipped).
pub async fn first_status_and_stock(ws: &mut Ws) -> (Value, Value) {
    let (mut status, mut stock) = (Value::Null, Value::Null);
    while status.is_null() || stock.is_null() {
        let message = next_json(ws).await;
        match message["type"].as_str() {
            Some("order_status") => status = message,
            Some("stock") => stock = message,
            _ => {}
        }
    }
    (status, stock)
}
