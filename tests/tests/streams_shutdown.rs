//! Graceful shutdown of event streams over real HTTP, in its own test binary because the drain signal is
//! process-wide: an open stream is sent `retry:` and `end` / `shutdown` and ends, so the gateway's drain is
//! not held up by it.

mod common;

use std::time::Duration;

use common::{client, config_for, mocks, start, token};
use mock_services::Service;
use serde_json::Value;

#[tokio::test]
async fn shutdown_tells_clients_when_to_reconnect() {
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    config.streams.retry_ms = 1_500;
    let gw = start(bff_web::app, config).await;
    let page: Value = client()
        .get(format!(
            "{}/users/10/orders?limit=1",
            mocks.url(Service::Orders)
        ))
        .send()
        .await
        .expect("orders")
        .json()
        .await
        .expect("json");
    let order = page["items"][0]["id"].as_str().expect("id").to_owned();
    let bearer = token(&mocks, "10", "bff-web", &["orders:read"]).await;
    let mut response = client()
        .get(format!("{}/api/orders/{order}/events", gw.url))
        .bearer_auth(&bearer)
        .send()
        .await
        .expect("connect");
    assert_eq!(response.status(), 200);
    let mut text = String::new();
    while !text.contains("id: 0\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), response.chunk())
            .await
            .expect("in time")
            .expect("chunk")
            .expect("not ended");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    bff_core::streams::drain_all();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(chunk)) = response.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream ends at once: {text}");
    assert!(
        text.ends_with("retry: 1500\nevent: end\ndata: {\"reason\":\"shutdown\"}\n\n"),
        "{text}"
    );
    // Nothing holds the drain up now.
    tokio::time::timeout(Duration::from_secs(3), gw.shutdown())
        .await
        .expect("the gateway stops without waiting for the stream");
}
