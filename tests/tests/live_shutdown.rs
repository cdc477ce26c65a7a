//! Graceful shutdown of WebSocket connections over real HTTP, in its own test binary because the drain signal
//! is process-wide: an open connection of bff-mobile's `GET /api/live` is closed with 1001 `shutdown`, and
//! the gateway's drain is not held up by it.

mod common;
#[path = "common/ws.rs"]
mod ws;

use std::time::Duration;

use common::token;
use futures::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use ws::*;

#[tokio::test]
async fn shutdown_closes_connections_with_1001() {
    let (mocks, gw) = mobile_with(|_| {}).await;
    let bearer = token(&mocks, "10", AUD, &[]).await;
    let mut ws = open(&gw, &bearer).await;
    ws.send(Message::text(r#"{"watch": {"products": ["1"]}}"#))
        .await
        .expect("send");
    assert_eq!(next_json(&mut ws).await["type"], "watching");
    bff_core::streams::drain_all();
    let (code, reason, _) = close_of(&mut ws).await.expect("a close frame");
    assert_eq!((code, reason.as_str()), (1001, "shutdown"));
    tokio::time::timeout(Duration::from_secs(3), gw.shutdown())
        .await
        .expect("the gateway stops without waiting for the connection");
}
