//! Server-Sent Events over real HTTP: bff-web's `GET /api/orders/{id}/events` relaying the orders mock's
//! NDJSON stream — events when the mock advances the order, heartbeats, `Last-Event-ID` resumption,
//! ownership at connect, the per-user limit, the idle timeout and token expiry, nothing internal leaking.

mod common;

use std::time::Duration;

use bff_core::BffConfig;
use common::{
    RunningGateway, advance, assert_no_leak, client, config_for, mint, mocks, open_order, start,
    token,
};
use mock_services::{FaultKind, FaultRule, MockStack, Service};
use serde_json::Value;

const AUD: &str = "bff-web";
/// The owner of the orders used here (orders `10xx`).
const USER: &str = "10";

/// Mocks + bff-web with `tweak` applied to `[streams]` and the rest of its config.
async fn web_with(tweak: impl FnOnce(&mut BffConfig)) -> (MockStack, RunningGateway) {
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    tweak(&mut config);
    let gw = start(bff_web::app, config).await;
    (mocks, gw)
}

/// An open event stream, read chunk by chunk.
struct Sse {
    response: reqwest::Response,
    text: String,
}

impl Sse {
    /// Reads until `needle` has arrived (within `within`); false when the stream ended or time ran out first.
    async fn until(&mut self, needle: &str, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while !self.text.contains(needle) {
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.text.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return false,
            }
        }
        true
    }

    /// Reads to the end of the stream (within `within`); true when it ended.
    async fn ended(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.text.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(_) => return true,
                Err(_) => return false,
            }
        }
    }
}

/// Opens `GET /api/orders/{order}/events` with `bearer` (and `Last-Event-ID` when given).
async fn connect(
    gw: &RunningGateway,
    order: &str,
    bearer: &str,
    last: Option<&str>,
) -> reqwest::Response {
    let mut request = client()
        .get(format!("{}/api/orders/{order}/events", gw.url))
        .bearer_auth(bearer)
        .timeout(Duration::from_secs(30));
    if let Some(id) = last {
        request = request.header("last-event-id", id);
    }
    request.send().await.expect("connect")
}

async fn open(gw: &RunningGateway, order: &str, bearer: &str, last: Option<&str>) -> Sse {
    let response = connect(gw, order, bearer, last).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    Sse {
        response,
        text: String::new(),
    }
}

/// The current status first, then each change as the mock advances the order, each with its `id:`; nothing
/// of the order beyond id and status (no payment, no internal notes, no downstream host) reaches the client.
#[tokio::test]
async fn events_follow_the_order_and_leak_nothing() {
    let (mocks, gw) = web_with(|_| {}).await;
    let order = open_order(&mocks, USER).await;
    let bearer = token(&mocks, USER, AUD, &["orders:read"]).await;
    let mut sse = open(&gw, &order, &bearer, None).await;
    assert!(sse.until("retry: 3000\n\n", Duration::from_secs(5)).await);
    assert!(
        sse.until("id: 0\nevent: status\n", Duration::from_secs(5))
            .await,
        "{}",
        sse.text
    );
    let change = advance(&mocks, &order).await;
    let status = change["order"]["status"]
        .as_str()
        .expect("status")
        .to_owned();
    let expected = format!(
        "id: 1\nevent: status\ndata: {{\"order_id\":\"{order}\",\"status\":\"{status}\"}}\n\n"
    );
    assert!(
        sse.until(&expected, Duration::from_secs(5)).await,
        "{}",
        sse.text
    );
    assert_no_leak(&sse.text, &mocks);
    for internal in ["internal_notes", "processor_ref", "payment", "seq"] {
        assert!(
            !sse.text.contains(internal),
            "{internal} leaked: {}",
            sse.text
        );
    }
    // The stream went through the orders service's streaming endpoint with the caller's identity.
    assert_eq!(
        mocks
            .handle(Service::Orders)
            .route_count("GET /orders/{id}/events"),
        1
    );
    let orders = mocks.handle(Service::Orders);
    assert_eq!(
        orders.last_uri().as_deref(),
        Some(&*format!("/orders/{order}/events"))
    );
    assert_eq!(orders.last_header("x-bff-user-id").as_deref(), Some(USER));
}

/// A downstream stream that fails to open is a problem+json (nothing internal in it) and frees the caller's
/// slot; once the fault is gone the stream opens.
#[tokio::test]
async fn failing_downstream_stream_is_a_problem_and_frees_the_slot() {
    let (mocks, gw) = web_with(|c| c.streams.max_per_user = 1).await;
    let order = open_order(&mocks, USER).await;
    let bearer = token(&mocks, USER, AUD, &["orders:read"]).await;
    let orders = mocks.handle(Service::Orders);
    orders.set_faults(vec![
        FaultRule::new(FaultKind::Error { status: 503 })
            .with_prefix(format!("/orders/{order}/events")),
    ]);
    let response = connect(&gw, &order, &bearer, None).await;
    let status = response.status().as_u16();
    assert!((502..=504).contains(&status), "{status}");
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    assert_no_leak(&response.text().await.expect("body"), &mocks);
    orders.clear_faults();
    let mut sse = open(&gw, &order, &bearer, None).await;
    assert!(
        sse.until("id: 0\n", Duration::from_secs(5)).await,
        "{}",
        sse.text
    );
}

/// Heartbeat comments keep a quiet stream alive.
#[tokio::test]
async fn heartbeats_arrive_on_a_quiet_stream() {
    let (mocks, gw) = web_with(|c| c.streams.heartbeat_ms = 200).await;
    let order = open_order(&mocks, USER).await;
    let bearer = token(&mocks, USER, AUD, &["orders:read"]).await;
    let mut sse = open(&gw, &order, &bearer, None).await;
    assert!(
        sse.until(": hb\n\n", Duration::from_secs(5)).await,
        "{}",
        sse.text
    );
}

/// A client reconnecting with `Last-Event-ID` gets exactly the changes it missed, not the ones it had.
#[tokio::test]
async fn last_event_id_resends_what_was_missed() {
    let (mocks, gw) = web_with(|_| {}).await;
    let order = open_order(&mocks, USER).await;
    let bearer = token(&mocks, USER, AUD, &["orders:read"]).await;
    advance(&mocks, &order).await;
    let second = advance(&mocks, &order).await;
    let mut sse = open(&gw, &order, &bearer, Some("0")).await;
    assert!(
        sse.until("id: 2\n", Duration::from_secs(5)).await,
        "{}",
        sse.text
    );
    assert!(sse.text.contains("id: 1\n"), "{}", sse.text);
    assert!(!sse.text.contains("id: 0\n"), "{}", sse.text);
    let status = second["order"]["status"].as_str().expect("status");
    assert!(sse.text.contains(&format!("\"status\":\"{status}\"")));
    // Up to date already: nothing is resent, only what comes next.
    let mut sse = open(&gw, &order, &bearer, Some("2")).await;
    assert!(sse.until("retry:", Duration::from_secs(5)).await);
    assert!(!sse.until("event: status", Duration::from_millis(500)).await);
    // An unreadable Last-Event-ID is ignored: the current status.
    let mut sse = open(&gw, &order, &bearer, Some("not-a-number")).await;
    assert!(
        sse.until("id: 2\n", Duration::from_secs(5)).await,
        "{}",
        sse.text
    );
}

/// Another user's order is a 404 at connect and opens no stream to the orders service.
#[tokio::test]
async fn another_users_order_opens_no_stream() {
    let (mocks, gw) = web_with(|_| {}).await;
    let order = open_order(&mocks, USER).await;
    let other = token(&mocks, "11", AUD, &["orders:read"]).await;
    let response = connect(&gw, &order, &other, None).await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    assert_eq!(
        mocks
            .handle(Service::Orders)
            .route_count("GET /orders/{id}/events"),
        0
    );
    // No token: 401; a missing scope: 403.
    let response = client()
        .get(format!("{}/api/orders/{order}/events", gw.url))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 401);
    let unscoped = token(&mocks, USER, AUD, &[]).await;
    assert_eq!(connect(&gw, &order, &unscoped, None).await.status(), 403);
}

/// Beyond `streams.max_per_user` open streams a caller gets 429 `too_many_streams`; closing one frees a slot.
#[tokio::test]
async fn per_user_limit_is_429() {
    let (mocks, gw) = web_with(|c| c.streams.max_per_user = 2).await;
    let order = open_order(&mocks, USER).await;
    let bearer = token(&mocks, USER, AUD, &["orders:read"]).await;
    let first = open(&gw, &order, &bearer, None).await;
    let _second = open(&gw, &order, &bearer, None).await;
    let refused = connect(&gw, &order, &bearer, None).await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.expect("problem");
    assert_eq!(body["code"], "too_many_streams");
    drop(first);
    let mut reopened = None;
    for _ in 0..50 {
        let response = connect(&gw, &order, &bearer, None).await;
        if response.status() == 200 {
            reopened = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reopened.is_some(), "a closed stream frees its slot");
}

/// A stream without events ends after `streams.idle_timeout_ms` with `end` / `idle_timeout`.
#[tokio::test]
async fn idle_stream_ends() {
    let (mocks, gw) = web_with(|c| c.streams.idle_timeout_ms = 1_000).await;
    let order = open_order(&mocks, USER).await;
    let bearer = token(&mocks, USER, AUD, &["orders:read"]).await;
    let mut sse = open(&gw, &order, &bearer, None).await;
    assert!(sse.ended(Duration::from_secs(10)).await, "{}", sse.text);
    assert!(
        sse.text
            .ends_with("event: end\ndata: {\"reason\":\"idle_timeout\"}\n\n"),
        "{}",
        sse.text
    );
}

/// The stream ends when the caller's token expires, even while events and heartbeats keep it busy.
#[tokio::test]
async fn stream_ends_when_the_token_expires() {
    let (mocks, gw) = web_with(|c| c.streams.heartbeat_ms = 200).await;
    let order = open_order(&mocks, USER).await;
    let bearer = mint(
        &mocks,
        serde_json::json!({"sub": USER, "aud": AUD, "scopes": ["orders:read"], "ttl_s": 2}),
    )
    .await;
    let mut sse = open(&gw, &order, &bearer, None).await;
    assert!(sse.ended(Duration::from_secs(10)).await, "{}", sse.text);
    assert!(sse.text.contains(": hb\n\n"), "{}", sse.text);
    assert!(
        sse.text
            .ends_with("event: end\ndata: {\"reason\":\"token_expired\"}\n\n"),
        "{}",
        sse.text
    );
}
