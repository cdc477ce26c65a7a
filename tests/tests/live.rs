//! WebSocket over real HTTP: bff-mobile's `GET /api/live` opened with a ticket from `POST /api/live/ticket`
//! (real signed tokens, a real tokio-tungstenite client): order status pushed when the mock advances the
//! order, stock of watched products, ownership, the ticket rules (missing, bad, used twice), the `Origin`
//! allow-list, the message size limit (1009), the per-user limit (429), the slow consumer (1013), the
//! silence timeout (1001), token expiry (1008), and the memory of many idle connections.

mod common;
#[path = "common/ws.rs"]
mod ws;

use std::time::Duration;

use common::{advance, assert_no_leak, client, mint, open_order, token};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use ws::*;

/// The owner of the orders used here (orders `10xx`).
const USER: &str = "10";

/// Watching an own order and a product: the summary, the order's current status and the product's stock;
/// when the mock advances the order, its new status is pushed. Another user's order is `not_found`, like an
/// unknown one; a message that is not the protocol's is `bad_message`; nothing internal leaks.
#[tokio::test]
async fn pushes_order_status_and_stock() {
    let (mocks, gw) = mobile_with(|_| {}).await;
    let order = open_order(&mocks, USER).await;
    let bearer = token(&mocks, USER, AUD, &[]).await;
    let mut ws = open(&gw, &bearer).await;
    ws.send(Message::text(
        json!({"watch": {"orders": [order], "products": ["1"]}}).to_string(),
    ))
    .await
    .expect("send");
    let mut seen = Vec::new();
    let watching = until(&mut ws, |m| m["type"] == "watching").await;
    assert_eq!(watching["orders"], json!([order]));
    assert_eq!(watching["products"], json!(["1"]));
    // The order's current status and the product's stock, in either order.
    let (first, stock) = first_status_and_stock(&mut ws).await;
    seen.push(first.to_string());
    seen.push(stock.to_string());
    assert_eq!(first["order_id"], order.as_str());
    assert_eq!(stock["product_id"], "1");
    assert!(stock["available"].is_u64(), "{stock}");
    let advanced = advance(&mocks, &order).await;
    let next = until(&mut ws, |m| m["type"] == "order_status").await;
    assert_eq!(next["order_id"], order.as_str());
    assert_eq!(next["status"], advanced["order"]["status"], "{advanced}");
    assert_ne!(next["status"], first["status"]);
    seen.push(next.to_string());
    // Another user's order (orders of user 11 are `11xx`) and an unknown one look the same.
    for other in ["1101", "99999"] {
        ws.send(Message::text(
            json!({"watch": {"orders": [other]}}).to_string(),
        ))
        .await
        .expect("send");
        let refused = until(&mut ws, |m| m["type"] == "error").await;
        assert_eq!(
            refused,
            json!({"type": "error", "code": "not_found", "id": other})
        );
    }
    ws.send(Message::text("{\"subscribe\": 1}"))
        .await
        .expect("send");
    let bad = until(&mut ws, |m| m["type"] == "error").await;
    assert_eq!(bad["code"], "bad_message");
    for text in &seen {
        assert_no_leak(text, &mocks);
    }
    ws.close(None).await.expect("close");
}

/// An upgrade without a ticket, with an unknown ticket, or with only a bearer token is 401 problem+json;
/// a non-upgrade request with a valid ticket is a 400 problem, not a panic.
#[tokio::test]
async fn upgrade_needs_a_valid_ticket() {
    let (mocks, gw) = mobile_with(|_| {}).await;
    let bearer = token(&mocks, USER, AUD, &[]).await;
    let auth = format!("Bearer {bearer}");
    for (query, headers) in [
        ("", vec![]),
        ("?ticket=", vec![]),
        ("?ticket=not-a-ticket", vec![]),
        ("", vec![("authorization", auth.as_str())]),
    ] {
        let (status, body, content_type) = upgrade_answer(&gw, query, &headers).await;
        assert_eq!(status, 401, "{query} {body}");
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(body["code"], "unauthenticated");
    }
    let fresh = ticket(&gw, &bearer).await;
    let plain = client()
        .get(format!("{}/api/live?ticket={fresh}", gw.url))
        .send()
        .await
        .expect("plain GET");
    assert_eq!(plain.status(), 400);
}

/// A ticket opens one connection; used again it is refused (401), even while the first is open.
#[tokio::test]
async fn ticket_is_single_use() {
    let (mocks, gw) = mobile_with(|_| {}).await;
    let bearer = token(&mocks, USER, AUD, &[]).await;
    let ticket = ticket(&gw, &bearer).await;
    let _first = open_with(&gw, &ticket, None).await.expect("first use");
    match open_with(&gw, &ticket, None).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
        }
        other => panic!("a second use must be refused: {:?}", other.map(|_| ())),
    }
    let (status, body, _) = upgrade_answer(&gw, &format!("?ticket={ticket}"), &[]).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthenticated"))
    );
}

/// With `cors.allowed_origins`, an upgrade from another `Origin` is 403 `origin_not_allowed` and does not
/// spend the ticket; the listed origin (and a native client without `Origin`) is upgraded.
#[tokio::test]
async fn unlisted_origin_is_forbidden() {
    let (mocks, gw) = mobile_with(|c| {
        c.cors.allowed_origins = vec!["https://app.example.com".into()];
    })
    .await;
    let bearer = token(&mocks, USER, AUD, &[]).await;
    let ticket = ticket(&gw, &bearer).await;
    let (status, body, content_type) = upgrade_answer(
        &gw,
        &format!("?ticket={ticket}"),
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["code"], "origin_not_allowed");
    let _ws = open_with(&gw, &ticket, Some("https://app.example.com"))
        .await
        .expect("the listed origin, same ticket");
    let _native = open(&gw, &bearer).await;
}

/// A message over `live.max_message_bytes` closes the connection with 1009.
#[tokio::test]
async fn oversized_message_closes_1009() {
    let (mocks, gw) = mobile_with(|c| c.live.max_message_bytes = 1024).await;
    let bearer = token(&mocks, USER, AUD, &[]).await;
    let mut ws = open(&gw, &bearer).await;
    ws.send(Message::text("x".repeat(4096)))
        .await
        .expect("send");
    let (code, reason, _) = close_of(&mut ws).await.expect("a close frame");
    assert_eq!((code, reason.as_str()), (1009, "message_too_big"));
    // The client answers the close frame; the closure is counted on the admin listener by its reason.
    while let Ok(Some(_)) = tokio::time::timeout(WITHIN, ws.next()).await {}
    let mut metrics = String::new();
    for _ in 0..200 {
        metrics = client()
            .get(format!("{}/metrics", gw.admin_url))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        if metrics.contains("bff_live_closed_total{reason=\"message_too_big\"} 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        metrics.contains("bff_live_closed_total{reason=\"message_too_big\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("bff_live_opened_total 1"), "{metrics}");
}

/// A binary message closes the connection with 1003 (the protocol is JSON text); beyond 32 products a watch
/// is `too_many_watches` and the connection stays open.
#[tokio::test]
async fn binary_closes_1003_and_watches_are_bounded() {
    let (mocks, gw) = mobile_with(|_| {}).await;
    let bearer = token(&mocks, USER, AUD, &[]).await;
    let mut ws = open(&gw, &bearer).await;
    let products: Vec<String> = (1..=33).map(|i| i.to_string()).collect();
    ws.send(Message::text(
        json!({"watch": {"products": products}}).to_string(),
    ))
    .await
    .expect("send");
    let refused = until(&mut ws, |m| m["type"] == "error").await;
    assert_eq!(
        refused,
        json!({"type": "error", "code": "too_many_watches", "id": "33"})
    );
    let watching = until(&mut ws, |m| m["type"] == "watching").await;
    assert_eq!(watching["products"].as_array().map(Vec::len), Some(32));
    ws.send(Message::binary(vec![1u8, 2, 3]))
        .await
        .expect("send");
    let (code, reason, _) = close_of(&mut ws).await.expect("a close frame");
    assert_eq!((code, reason.as_str()), (1003, "text_only"));
}

/// Beyond `live.max_per_user` open connections, the upgrade is 429 `too_many_connections`; closing one
/// makes room.
#[tokio::test]
async fn per_user_limit_is_429() {
    let (mocks, gw) = mobile_with(|c| c.live.max_per_user = 2).await;
    let bearer = token(&mocks, USER, AUD, &[]).await;
    let _a = open(&gw, &bearer).await;
    let mut b = open(&gw, &bearer).await;
    let third = ticket(&gw, &bearer).await;
    let (status, body, _) = upgrade_answer(&gw, &format!("?ticket={third}"), &[]).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("too_many_connections"))
    );
    // Another user is not affected.
    let other = token(&mocks, "11", AUD, &[]).await;
    let _c = open(&gw, &other).await;
    b.close(None).await.expect("close");
    while b.next().await.is_some() {}
    assert!(
        slot_freed(&gw, &bearer, 200).await,
        "a closed connection frees its slot"
    );
}

/// A client that sends requests but does not read the answers: once its queue (`live.send_queue`) is full
/// the gateway closes the connection with 1013 `slow_consumer` instead of buffering further.
#[tokio::test]
async fn slow_consumer_is_closed_1013() {
    let (mocks, gw) = mobile_with(|c| {
        c.live.max_per_user = 1;
        // Larger than the answers to one message (17), so only a client that stops reading overflows it.
        c.live.send_queue = 64;
        c.live.pong_timeout_ms = 60_000;
    })
    .await;
    let bearer = token(&mocks, USER, AUD, &[]).await;
    let ws = open(&gw, &bearer).await;
    let (mut sink, mut stream) = ws.split();
    // Each message asks for 17 answers (16 `not_found` with the id echoed, one `watching`).
    let ids: Vec<String> = (0..16).map(|i| format!("{i:x}").repeat(60)).collect();
    let request = json!({"watch": {"products": ids}}).to_string();
    const SENT: usize = 20_000;
    let flood = tokio::spawn(async move {
        for _ in 0..SENT {
            if sink.send(Message::text(request.clone())).await.is_err() {
                break;
            }
        }
    });
    // The connection's slot is freed as soon as the gateway decides to close it (a new upgrade succeeds).
    assert!(
        slot_freed(&gw, &bearer, 600).await,
        "the slow consumer's connection was closed"
    );
    let mut texts = 0;
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(60), stream.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                break Some((u16::from(frame.code), frame.reason.to_string()));
            }
            Ok(Some(Ok(Message::Text(_)))) => texts += 1,
            Ok(Some(Ok(_))) => {}
            _ => break None,
        }
    };
    flood.abort();
    assert_eq!(close, Some((1013, "slow_consumer".into())));
    assert!(
        texts < SENT * 17,
        "answers were dropped, not buffered: {texts} received"
    );
    eprintln!(
        "slow consumer: {texts} of {} answers delivered before 1013",
        SENT * 17
    );
}

/// A client that never answers pings (it does not read) is closed with 1001 `ping_timeout` once nothing
/// was heard for `ping_interval_ms + pong_timeout_ms`.
#[tokio::test]
async fn silent_client_times_out() {
    let (mocks, gw) = mobile_with(|c| {
        c.live.ping_interval_ms = 200;
        c.live.pong_timeout_ms = 300;
        c.live.max_per_user = 1;
    })
    .await;
    let bearer = token(&mocks, USER, AUD, &[]).await;
    let mut ws = open(&gw, &bearer).await;
    // Not reading: the client's pongs are never sent. The slot frees when the gateway gives up.
    assert!(
        slot_freed(&gw, &bearer, 400).await,
        "the silent connection was closed"
    );
    let (code, reason, _) = close_of(&mut ws).await.expect("a close frame");
    assert_eq!((code, reason.as_str()), (1001, "ping_timeout"));
}

/// A connection ends when its credential expires: 1008 `token_expired`.
#[tokio::test]
async fn token_expiry_closes_1008() {
    let (mocks, gw) = mobile_with(|c| {
        c.live.ping_interval_ms = 500;
    })
    .await;
    let bearer = mint(
        &mocks,
        json!({"sub": USER, "aud": AUD, "scopes": [], "ttl_s": 3}),
    )
    .await;
    let mut ws = open(&gw, &bearer).await;
    let (code, reason, _) = close_of(&mut ws).await.expect("a close frame");
    assert_eq!((code, reason.as_str()), (1008, "token_expired"));
}

/// The document describes the WebSocket route as a GET answering 101, secured by the `ticket` query
/// parameter (not the bearer token), and the ticket endpoint as a bearer-secured POST.
#[tokio::test]
async fn openapi_documents_the_ticket_route() {
    let (_mocks, gw) = mobile_with(|_| {}).await;
    let doc: Value = client()
        .get(format!("{}/openapi.json", gw.url))
        .send()
        .await
        .expect("document")
        .json()
        .await
        .expect("json");
    let live = &doc["paths"]["/api/live"]["get"];
    assert!(live["responses"]["101"].is_object(), "{live}");
    assert!(live["responses"]["429"].is_object(), "{live}");
    assert_eq!(live["security"], json!([{"ticket": []}]));
    assert_eq!(
        doc["components"]["securitySchemes"]["ticket"]["in"],
        "query"
    );
    let ticket = &doc["paths"]["/api/live/ticket"]["post"];
    assert_eq!(ticket["security"], json!([{"bearer": []}]));
    assert!(ticket["responses"]["200"].is_object());
}
