//! gRPC downstreams over real HTTP/2: the mocks' tonic servers (REST port + 100) behind real gateways. The same
//! screens over gRPC and over REST answer the same bodies; every failure of a gRPC part (status, service
//! down, hang, reset, oversized or malformed message, wrong media type) leaves as the problem of its mapping,
//! leaking no status message, host or port; retries on `UNAVAILABLE` only, the breaker, the deadline sent
//! as `grpc-timeout`, the identity and trace as metadata. bff-web's order events (SSE) and bff-mobile's
//! WebSocket feed follow the gRPC server stream `WatchOrder`.

mod common;
#[path = "common/ws.rs"]
mod ws;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bff_core::BffConfig;
use bff_core::config::Protocol;
use common::*;
use mock_services::data::inventory;
use mock_services::{FaultKind, FaultRule, MockStack, Service};

const ACME: &str = "dev-acme-key";
const GET_STOCK: &str = "POST /shop.inventory.Inventory/GetStock";

/// Points the downstream of `service` at the mock's gRPC port, `protocol = "grpc"`.
fn use_grpc(config: &mut BffConfig, mocks: &MockStack, service: Service) {
    let d = config
        .downstreams
        .get_mut(service.name())
        .expect("downstream configured");
    d.protocol = Protocol::Grpc;
    d.url = mocks
        .handle(service)
        .grpc_url()
        .expect("the service serves gRPC");
}

/// `text` names no gRPC port of the mocks either (the REST ports are checked by `assert_no_leak`).
fn assert_no_grpc_leak(text: &str, mocks: &MockStack) {
    for handle in mocks.handles() {
        if let Some(addr) = handle.grpc_addr() {
            assert!(
                !text.contains(&addr.port().to_string()),
                "leaks a gRPC port: {text}"
            );
        }
    }
    for needle in ["grpc", "tonic", "injected", "status:"] {
        assert!(
            !text.to_lowercase().contains(needle),
            "leaks `{needle}`: {text}"
        );
    }
}

/// bff-partner with inventory over gRPC, breaker off (each case below is judged alone), `tune` applied.
async fn partner_grpc(mocks: &MockStack, tune: impl FnOnce(&mut BffConfig)) -> RunningGateway {
    let mut config = config_for(bff_partner::defaults(), mocks);
    use_grpc(&mut config, mocks, Service::Inventory);
    let d = config.downstreams.get_mut("inventory").expect("inventory");
    d.resilience.breaker.enabled = false;
    tune(&mut config);
    start(bff_partner::app, config).await
}

/// The web screens composing inventory and recommendations answer the same bodies over gRPC as over REST; the
/// gRPC calls carry the deadline, identity and trace as metadata, over HTTP/2.
#[tokio::test]
async fn web_screens_are_the_same_over_grpc_and_rest() {
    let mocks = mocks().await;
    let rest = start(bff_web::app, config_for(bff_web::defaults(), &mocks)).await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    use_grpc(&mut config, &mocks, Service::Inventory);
    use_grpc(&mut config, &mocks, Service::Recommendations);
    let grpc = start(bff_web::app, config).await;
    let token = token(&mocks, "7", "bff-web", &[]).await;
    let out_of_stock = (1..=5000)
        .find(|n| inventory::inventory(*n).available == 0)
        .expect("one product out of stock")
        .to_string();
    let inventory = mocks.handle(Service::Inventory);
    let recommendations = mocks.handle(Service::Recommendations);
    for path in [
        "/api/home".to_owned(),
        "/api/products/1".to_owned(),
        format!("/api/products/{out_of_stock}"),
    ] {
        let over_rest = get_auth(&format!("{}{path}", rest.url), &token).await;
        let over_grpc = get_auth(&format!("{}{path}", grpc.url), &token).await;
        assert_eq!(over_rest.status, 200, "{path}: {}", over_rest.body);
        assert_eq!(over_grpc.status, 200, "{path}: {}", over_grpc.body);
        assert_eq!(over_grpc.header("bff-partial"), None, "{path}");
        assert_eq!(over_rest.json(), over_grpc.json(), "{path}");
    }
    assert!(inventory.route_count(GET_STOCK) >= 2);
    assert!(inventory.route_count("POST /shop.inventory.Inventory/BatchGetStock") >= 1);
    assert!(
        recommendations
            .route_count("POST /shop.recommendations.Recommendations/ListRecommendations")
            >= 1
    );
    // The last inventory call was the gRPC GetStock of the product page.
    let last = inventory.received().last.expect("a call");
    assert_eq!(last.uri, "/shop.inventory.Inventory/GetStock");
    assert_eq!(last.version, "HTTP/2.0");
    assert_eq!(
        inventory.last_header("content-type").as_deref(),
        Some("application/grpc")
    );
    assert_eq!(inventory.last_header("te").as_deref(), Some("trailers"));
    assert_eq!(inventory.last_header("x-bff-user-id").as_deref(), Some("7"));
    assert!(inventory.last_header("x-request-id").is_some());
    assert!(inventory.last_header("traceparent").is_some());
    let timeout = inventory.last_header("grpc-timeout").expect("grpc-timeout");
    let ms: u64 = timeout
        .strip_suffix('m')
        .and_then(|v| v.parse().ok())
        .expect("milliseconds");
    assert!((1..=2_000).contains(&ms), "{timeout}");
    rest.shutdown().await;
    grpc.shutdown().await;
    mocks.shutdown().await;
}

/// Each gRPC status of a required part maps to its problem (NOT_FOUND 404, PERMISSION_DENIED 403, UNAVAILABLE
/// 503, DEADLINE_EXCEEDED 504, others 502); so do a reset stream, a malformed or oversized message and a wrong
/// media type. No status message, host, port or library name reaches the client. Only UNAVAILABLE is retried.
#[tokio::test]
async fn grpc_failures_map_to_problems_without_leaking() {
    let mocks = mocks().await;
    let gw = partner_grpc(&mocks, |c| {
        let d = c.downstreams.get_mut("inventory").expect("inventory");
        d.max_response_bytes = 64 * 1024;
    })
    .await;
    let inventory = mocks.handle(Service::Inventory);
    let url = format!("{}/v1/products/1/availability", gw.url);
    let ok = get(&url, &[("x-api-key", ACME)]).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(
        inventory.last_header("x-bff-partner-id").as_deref(),
        Some("acme"),
        "the partner identity travels as metadata"
    );
    let cases: Vec<(FaultKind, u16, &str, bool)> = vec![
        (FaultKind::Error { status: 404 }, 404, "not_found", false),
        (FaultKind::Error { status: 403 }, 403, "forbidden", false),
        (
            FaultKind::Error { status: 503 },
            503,
            "downstream_unavailable",
            true,
        ),
        (
            FaultKind::Error { status: 504 },
            504,
            "deadline_exceeded",
            false,
        ),
        (FaultKind::Error { status: 500 }, 502, "bad_gateway", false),
        (FaultKind::Error { status: 400 }, 502, "bad_gateway", false),
        (FaultKind::MalformedJson, 502, "bad_gateway", false),
        (
            FaultKind::Oversized { bytes: 1 << 20 },
            502,
            "bad_gateway",
            false,
        ),
        (
            FaultKind::WrongContentType {
                content_type: "application/json".into(),
            },
            502,
            "bad_gateway",
            false,
        ),
        (FaultKind::Reset, 502, "bad_gateway", true),
    ];
    for (fault, status, code, retried) in cases {
        inventory.set_faults(vec![FaultRule::new(fault.clone()).with_prefix("/shop.")]);
        inventory.reset_received();
        let reply = get(&url, &[("x-api-key", ACME)]).await;
        reply.assert_problem(status, code, &mocks);
        assert_no_grpc_leak(&reply.body, &mocks);
        let calls = inventory.route_count(GET_STOCK);
        if retried {
            assert!(calls > 1, "{fault:?} is retried: {calls} calls");
        } else {
            assert_eq!(calls, 1, "{fault:?} is not retried");
        }
    }
    inventory.clear_faults();
    gw.shutdown().await;
    mocks.shutdown().await;
}

/// A gRPC service that is down is a 503; one that hangs is a 504 within the request's deadline, which it
/// was told in `grpc-timeout`.
#[tokio::test]
async fn grpc_down_is_503_and_hang_is_504_within_the_deadline() {
    let mocks = mocks().await;
    // Down: a port nobody listens on.
    let closed = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let closed_url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let gw = partner_grpc(&mocks, |c| {
        c.downstreams.get_mut("inventory").expect("inventory").url = closed_url;
    })
    .await;
    let down = get(
        &format!("{}/v1/products/1/availability", gw.url),
        &[("x-api-key", ACME)],
    )
    .await;
    down.assert_problem(503, "downstream_unavailable", &mocks);
    gw.shutdown().await;
    // Hangs: the request's budget (800 ms) ends the call.
    let gw = partner_grpc(&mocks, |c| {
        c.server.request_timeout_ms = 800;
    })
    .await;
    let inventory = mocks.handle(Service::Inventory);
    inventory.set_faults(vec![FaultRule::new(FaultKind::Hang).with_prefix("/shop.")]);
    let started = Instant::now();
    let hung = get(
        &format!("{}/v1/products/1/availability", gw.url),
        &[("x-api-key", ACME)],
    )
    .await;
    hung.assert_problem(504, "deadline_exceeded", &mocks);
    // A hang guard, not a timing claim: the answer came from the deadline, not from the 24 h hang.
    assert!(started.elapsed() < Duration::from_secs(30));
    let timeout = inventory.last_header("grpc-timeout").expect("grpc-timeout");
    let ms: u64 = timeout
        .strip_suffix('m')
        .and_then(|v| v.parse().ok())
        .expect("milliseconds");
    assert!(
        (1..=800).contains(&ms),
        "the deadline is announced: {timeout}"
    );
    inventory.clear_faults();
    gw.shutdown().await;
    mocks.shutdown().await;
}

/// Server faults of a gRPC downstream open its breaker: then the service is not called at all (503
/// `circuit_open`).
#[tokio::test]
async fn grpc_failures_open_the_breaker() {
    let mocks = mocks().await;
    let gw = partner_grpc(&mocks, |c| {
        let d = c.downstreams.get_mut("inventory").expect("inventory");
        d.resilience.breaker.enabled = true;
        d.resilience.breaker.consecutive_failures = 3;
        d.resilience.breaker.open_ms = 60_000;
        d.resilience.retry.max_retries = 0;
    })
    .await;
    let inventory = mocks.handle(Service::Inventory);
    inventory.set_faults(vec![
        FaultRule::new(FaultKind::Error { status: 500 }).with_prefix("/shop."),
    ]);
    let url = format!("{}/v1/products/1/availability", gw.url);
    for _ in 0..3 {
        get(&url, &[("x-api-key", ACME)])
            .await
            .assert_problem(502, "bad_gateway", &mocks);
    }
    let before = inventory.route_count(GET_STOCK);
    get(&url, &[("x-api-key", ACME)])
        .await
        .assert_problem(503, "circuit_open", &mocks);
    assert_eq!(inventory.route_count(GET_STOCK), before, "not called");
    inventory.clear_faults();
    gw.shutdown().await;
    mocks.shutdown().await;
}

/// `protocol = "grpc"` is checked: gRPC needs HTTP/2, so `http2 = "never"` is refused, naming the key.
#[tokio::test]
async fn grpc_with_http2_never_is_refused() {
    let mut config = bff_partner::defaults();
    let d = config.downstreams.get_mut("inventory").expect("inventory");
    d.protocol = Protocol::Grpc;
    d.http2 = bff_core::tls::Http2Mode::Never;
    let err = bff_core::Gateway::new(config).expect_err("refused");
    assert!(
        err.to_string().contains("downstreams.inventory.http2"),
        "{err}"
    );
}

/// The owner of the orders watched below (orders `10xx`).
const USER: &str = "10";

/// Reads `response` until `text` holds `needle` (true), or the stream ends / `within` passes (false).
async fn read_until(
    response: &mut reqwest::Response,
    text: &mut String,
    needle: &str,
    within: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while !text.contains(needle) {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            _ => return false,
        }
    }
    true
}

/// bff-web's `GET /api/orders/{id}/events` fed by the gRPC `WatchOrder` stream: the current status (after
/// `Last-Event-ID`), then each change `advance` makes; a stream reset mid-way ends the client's stream
/// after the events already relayed, leaking nothing.
#[tokio::test]
async fn order_events_over_grpc_watch_order() {
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    use_grpc(&mut config, &mocks, Service::Orders);
    let gw = start(bff_web::app, config).await;
    let order = open_order(&mocks, USER).await;
    let bearer = token(&mocks, USER, "bff-web", &["orders:read"]).await;
    let first = advance(&mocks, &order).await;
    assert_eq!(first["seq"], 1);
    let connect = |last: &'static str| {
        client()
            .get(format!("{}/api/orders/{order}/events", gw.url))
            .bearer_auth(&bearer)
            .header("last-event-id", last)
            .timeout(Duration::from_secs(30))
            .send()
    };
    let mut response = connect("0").await.expect("connect");
    assert_eq!(response.status(), 200);
    let mut text = String::new();
    assert!(
        read_until(
            &mut response,
            &mut text,
            "id: 1\nevent: status\n",
            Duration::from_secs(10)
        )
        .await,
        "{text}"
    );
    assert!(!text.contains("id: 0\n"), "resumed after 0: {text}");
    let second = advance(&mocks, &order).await;
    let status = second["order"]["status"].as_str().expect("status");
    let expected = format!(
        "id: 2\nevent: status\ndata: {{\"order_id\":\"{order}\",\"status\":\"{status}\"}}\n\n"
    );
    assert!(
        read_until(&mut response, &mut text, &expected, Duration::from_secs(10)).await,
        "{text}"
    );
    assert_no_leak(&text, &mocks);
    let orders = mocks.handle(Service::Orders);
    assert_eq!(
        orders.route_count("POST /shop.orders.Orders/GetOrder"),
        1,
        "ownership checked over gRPC"
    );
    assert_eq!(orders.route_count("POST /shop.orders.Orders/WatchOrder"), 1);
    assert_eq!(orders.route_count("GET /orders/{id}/events"), 0);
    assert_eq!(orders.last_header("x-bff-user-id").as_deref(), Some(USER));
    drop(response);
    // Reset after the first change: the client gets that change, then its stream ends.
    orders.set_faults(vec![
        FaultRule::new(FaultKind::Reset).with_prefix("/shop.orders.Orders/WatchOrder"),
    ]);
    let mut response = connect("1").await.expect("connect");
    assert_eq!(response.status(), 200);
    let mut text = String::new();
    assert!(
        read_until(&mut response, &mut text, "id: 2\n", Duration::from_secs(10)).await,
        "{text}"
    );
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(chunk)) = response.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream ends after the reset: {text}");
    assert_no_leak(&text, &mocks);
    assert_no_grpc_leak(&text, &mocks);
    orders.clear_faults();
    gw.shutdown().await;
    mocks.shutdown().await;
}

/// bff-mobile's product page and bff-partner's product and product list answer the same over gRPC as over
/// REST.
#[tokio::test]
async fn mobile_and_partner_screens_are_the_same_over_grpc() {
    let mocks = mocks().await;
    let mobile_rest = start(bff_mobile::app, config_for(bff_mobile::defaults(), &mocks)).await;
    let mut config = config_for(bff_mobile::defaults(), &mocks);
    use_grpc(&mut config, &mocks, Service::Inventory);
    use_grpc(&mut config, &mocks, Service::Recommendations);
    let mobile_grpc = start(bff_mobile::app, config).await;
    let token = token(&mocks, "7", "bff-mobile", &[]).await;
    for path in ["/api/products/1", "/api/products/3", "/api/home"] {
        let a = get_auth(&format!("{}{path}", mobile_rest.url), &token).await;
        let b = get_auth(&format!("{}{path}", mobile_grpc.url), &token).await;
        assert_eq!(
            (a.status, b.status),
            (200, 200),
            "{path}: {} / {}",
            a.body,
            b.body
        );
        assert_eq!(b.header("bff-partial"), None, "{path}");
        assert_eq!(a.json(), b.json(), "{path}");
    }
    let partner_rest = start(
        bff_partner::app,
        config_for(bff_partner::defaults(), &mocks),
    )
    .await;
    let partner_grpc = partner_grpc(&mocks, |_| {}).await;
    for path in [
        "/v1/products/1",
        "/v1/products?ids=1,2,3,99999",
        "/v1/products/2/availability",
    ] {
        let a = get(
            &format!("{}{path}", partner_rest.url),
            &[("x-api-key", ACME)],
        )
        .await;
        let b = get(
            &format!("{}{path}", partner_grpc.url),
            &[("x-api-key", ACME)],
        )
        .await;
        assert_eq!(
            (a.status, b.status),
            (200, 200),
            "{path}: {} / {}",
            a.body,
            b.body
        );
        assert_eq!(b.header("bff-partial"), None, "{path}");
        assert_eq!(a.json(), b.json(), "{path}");
    }
    mocks.shutdown().await;
}

/// A gRPC downstream's instances are balanced like an HTTP one's: round robin over two inventory mocks.
#[tokio::test]
async fn grpc_calls_are_balanced_over_instances() {
    let mocks = mocks().await;
    let second = mock_services::spawn(
        Service::Inventory,
        (Ipv4Addr::LOCALHOST, 0).into(),
        mock_services::ServiceConfig::default(),
    )
    .await
    .expect("second inventory");
    let second_url = second.grpc_url().expect("gRPC");
    let gw = partner_grpc(&mocks, |c| {
        let r = &mut c
            .downstreams
            .get_mut("inventory")
            .expect("inventory")
            .resilience;
        r.instances = vec![second_url];
        r.balance = bff_core::resilience::BalanceMode::RoundRobin;
    })
    .await;
    for _ in 0..4 {
        let reply = get(
            &format!("{}/v1/products/1/availability", gw.url),
            &[("x-api-key", ACME)],
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    assert_eq!(mocks.handle(Service::Inventory).route_count(GET_STOCK), 2);
    assert_eq!(second.route_count(GET_STOCK), 2);
    gw.shutdown().await;
    second.shutdown().await;
    mocks.shutdown().await;
}

/// bff-mobile's WebSocket `GET /api/live` over gRPC downstreams: ownership checked with `GetOrder`, the
/// order's status relayed from `WatchOrder` and the watched stock polled with `BatchGetStock` — no REST call
/// to orders or inventory.
#[tokio::test]
async fn live_feed_over_grpc_watch_order() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let mocks = mocks().await;
    let mut config = config_for(bff_mobile::defaults(), &mocks);
    config.rate_limit.policies.clear();
    use_grpc(&mut config, &mocks, Service::Orders);
    use_grpc(&mut config, &mocks, Service::Inventory);
    let gw = start(bff_mobile::app, config).await;
    let order = open_order(&mocks, USER).await;
    let bearer = token(&mocks, USER, ws::AUD, &[]).await;
    let mut live = ws::open(&gw, &bearer).await;
    let watch = serde_json::json!({"watch": {"orders": [order, "1101"], "products": ["1"]}});
    live.send(Message::text(watch.to_string()))
        .await
        .expect("send");
    let refused = ws::until(&mut live, |m| m["type"] == "error").await;
    assert_eq!(
        refused["code"], "not_found",
        "another user's order: {refused}"
    );
    // The order's current status and the product's stock, in either order.
    let (first, stock) = ws::first_status_and_stock(&mut live).await;
    assert_eq!(first["order_id"], order.as_str());
    assert_eq!(stock["product_id"], "1");
    assert!(stock["available"].is_u64(), "{stock}");
    let advanced = advance(&mocks, &order).await;
    let next = ws::until(&mut live, |m| m["type"] == "order_status").await;
    assert_eq!(next["status"], advanced["order"]["status"], "{advanced}");
    assert_ne!(next["status"], first["status"]);
    let orders = mocks.handle(Service::Orders);
    assert_eq!(orders.route_count("POST /shop.orders.Orders/GetOrder"), 2);
    assert_eq!(orders.route_count("POST /shop.orders.Orders/WatchOrder"), 1);
    assert_eq!(orders.route_count("GET /orders/{id}/events"), 0);
    assert_eq!(orders.last_header("x-bff-user-id").as_deref(), Some(USER));
    let inventory = mocks.handle(Service::Inventory);
    assert!(inventory.route_count("POST /shop.inventory.Inventory/BatchGetStock") >= 1);
    assert_eq!(inventory.route_count("GET /inventory"), 0);
    for text in [&first, &next, &stock, &refused] {
        assert_no_leak(&text.to_string(), &mocks);
        assert_no_grpc_leak(&text.to_string(), &mocks);
    }
    live.close(None).await.expect("close");
}

/// bff-web's and bff-mobile's `GET /api/orders/{id}` with orders over gRPC (`GetOrder`) answer what they
/// answer over REST; another user's order is the same 404 over both.
#[tokio::test]
async fn order_views_are_the_same_over_grpc() {
    let mocks = mocks().await;
    let order = open_order(&mocks, USER).await;
    for (app, defaults, aud) in [
        (
            bff_web::app as fn(BffConfig) -> _,
            bff_web::defaults as fn() -> BffConfig,
            "bff-web",
        ),
        (bff_mobile::app, bff_mobile::defaults, "bff-mobile"),
    ] {
        let rest = start(app, config_for(defaults(), &mocks)).await;
        let mut config = config_for(defaults(), &mocks);
        use_grpc(&mut config, &mocks, Service::Orders);
        let grpc = start(app, config).await;
        let bearer = token(&mocks, USER, aud, &["orders:read"]).await;
        let orders = mocks.handle(Service::Orders);
        for (path, status) in [
            (format!("/api/orders/{order}"), 200),
            ("/api/orders/1101".to_owned(), 404),
        ] {
            let a = get_auth(&format!("{}{path}", rest.url), &bearer).await;
            assert_eq!(a.status, status, "{aud} {path} over REST: {}", a.body);
            orders.reset_received();
            let b = get_auth(&format!("{}{path}", grpc.url), &bearer).await;
            assert_eq!(a.status, b.status, "{aud} {path}: {} / {}", a.body, b.body);
            assert_eq!(orders.route_count("POST /shop.orders.Orders/GetOrder"), 1);
            assert_eq!(orders.route_count("GET /orders/{id}"), 0, "{aud} {path}");
            if status == 200 {
                assert_eq!(a.json(), b.json(), "{aud} {path}");
            } else {
                assert_no_grpc_leak(&b.body, &mocks);
            }
        }
    }
}
