//! Writes through the gateways over real HTTP: typed bodies and every "bad input" of issue 15, commands
//! made once (never retried), `Idempotency-Key` replay/conflict/scope (memory, and two instances sharing a
//! real Redis), 504 `outcome_unknown` and the safe retry, read-your-writes, tighter write limits.

mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::io::{Read, Write};
use std::time::Duration;

use bff_core::BffConfig;
use bff_core::ratelimit::config::StoreKind;
use common::{Reply, RunningGateway, client, config_for, mocks, start, token};
use mock_services::{FaultKind, FaultRule, MockStack, Service};
use redis_server::RedisServer;
use serde_json::{Value, json};

const JSON: &str = "application/json";

/// Sends `method url` with `headers` and a raw `body`.
async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = client().request(method, url).body(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.expect("request");
    Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.expect("body"),
    }
}

/// POSTs `body` as JSON with a bearer token (and an optional idempotency key).
async fn post(url: &str, bearer: &str, key: Option<&str>, body: &Value) -> Reply {
    let auth = format!("Bearer {bearer}");
    let mut headers = vec![("authorization", auth.as_str()), ("content-type", JSON)];
    if let Some(k) = key {
        headers.push(("idempotency-key", k));
    }
    send("POST", url, &headers, serde_json::to_vec(body).unwrap()).await
}

/// A product in stock (about one in ten is not).
const PRODUCT: &str = "42";

/// Mocks + bff-web with `tweak` applied to its config.
async fn web_with(tweak: impl FnOnce(&mut BffConfig)) -> (MockStack, RunningGateway) {
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    tweak(&mut config);
    let gw = start(bff_web::app, config).await;
    (mocks, gw)
}

fn posts(mocks: &MockStack, service: Service, route: &str) -> u64 {
    mocks.handle(service).route_count(route)
}

/// The README walk-through: add to the cart, read it, check out with a key, read the order back on the
/// home screen and the cart empty — with the cart and orders cached (60 s), so each read after a write shows
/// the write only because the write invalidated them.
#[tokio::test]
async fn checkout_walkthrough_reads_its_writes() {
    let (mocks, gw) = web_with(|c| {
        c.downstreams.get_mut("orders").unwrap().cache.ttl_s = 60;
    })
    .await;
    let t = token(&mocks, "7", "bff-web", &["orders:read"]).await;
    let cart = common::get_auth(&format!("{}/api/cart", gw.url), &t).await;
    assert_eq!(cart.status, 200, "{}", cart.body);
    assert_eq!(cart.json()["items"], json!([]));
    let home = common::get_auth(&format!("{}/api/home", gw.url), &t).await;
    let before = home.json()["recent_orders"][0]["id"].clone();

    let added = post(
        &format!("{}/api/cart/items", gw.url),
        &t,
        None,
        &json!({"product_id": PRODUCT, "quantity": 2}),
    )
    .await;
    assert_eq!(added.status, 200, "{}", added.body);
    assert_eq!(added.json()["items"][0]["quantity"], 2);
    assert!(
        added.json()["items"][0]["product"]["name"].is_string(),
        "enriched: {}",
        added.body
    );
    let cart = common::get_auth(&format!("{}/api/cart", gw.url), &t).await;
    assert_eq!(
        cart.json()["items"][0]["product_id"],
        PRODUCT,
        "the cached cart was invalidated"
    );

    let order = post(
        &format!("{}/api/orders", gw.url),
        &t,
        Some("checkout-1"),
        &json!({"payment_method": "card"}),
    )
    .await;
    assert_eq!(order.status, 201, "{}", order.body);
    let id = order.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        order.header("location"),
        Some(format!("/api/orders/{id}").as_str())
    );
    assert!(order.json()["items"][0]["product"]["name"].is_string());
    assert!(
        order.json().get("payment").is_none(),
        "shaped for web: {}",
        order.body
    );
    let sent = mocks.handle(Service::Orders).last_header("idempotency-key");
    assert!(
        sent.is_some_and(|k| k.len() == 64 && k != "checkout-1"),
        "a derived key is forwarded"
    );

    let home = common::get_auth(&format!("{}/api/home", gw.url), &t).await;
    assert_eq!(
        home.json()["recent_orders"][0]["id"],
        json!(id),
        "was {before}"
    );
    let cart = common::get_auth(&format!("{}/api/cart", gw.url), &t).await;
    assert_eq!(cart.json()["items"], json!([]));
    let read = common::get_auth(&format!("{}/api/orders/{id}", gw.url), &t).await;
    assert_eq!(read.status, 200);

    let empty = post(
        &format!("{}/api/orders", gw.url),
        &t,
        None,
        &json!({"payment_method": "card"}),
    )
    .await;
    empty.assert_problem(409, "cart_empty", &mocks);
    let removed = send(
        "DELETE",
        &format!("{}/api/cart/items/{PRODUCT}", gw.url),
        &[("authorization", &format!("Bearer {t}"))],
        vec![],
    )
    .await;
    removed.assert_problem(404, "not_found", &mocks);
}

/// A review shows at once on the product page (reviews and rating are shared-cached for 60 s).
#[tokio::test]
async fn review_shows_on_the_product_page() {
    let (mocks, gw) = web_with(|_| {}).await;
    let t = token(&mocks, "9", "bff-web", &[]).await;
    let page = common::get_auth(&format!("{}/api/products/3", gw.url), &t).await;
    assert_eq!(page.status, 200);
    let count = page.json()["rating"]["count"].as_u64().unwrap();
    let review = post(
        &format!("{}/api/products/3/reviews", gw.url),
        &t,
        None,
        &json!({"rating": 5, "title": "Great", "body": "Works well."}),
    )
    .await;
    assert_eq!(review.status, 201, "{}", review.body);
    assert!(review.json().get("user_id").is_none());
    let sent: Value = serde_json::from_str(
        &mocks
            .handle(Service::Reviews)
            .received()
            .last
            .unwrap()
            .body
            .unwrap(),
    )
    .unwrap();
    assert_eq!(sent["user_id"], "9", "the author is the verified caller");
    let page = common::get_auth(&format!("{}/api/products/3", gw.url), &t).await;
    assert_eq!(page.json()["rating"]["count"].as_u64(), Some(count + 1));
    assert_eq!(page.json()["reviews"][0]["id"], review.json()["id"]);
    let again = post(
        &format!("{}/api/products/3/reviews", gw.url),
        &t,
        None,
        &json!({"rating": 4, "title": "Again", "body": "Twice."}),
    )
    .await;
    again.assert_problem(409, "already_reviewed", &mocks);
}

/// Every bad body of issue 15 gets its problem (status, stable code) and nothing reaches the orders service.
#[tokio::test]
async fn bad_bodies_are_refused_before_the_downstream() {
    let (mocks, gw) = web_with(|c| {
        c.body.gzip_routes = vec!["/api/orders".into()];
        c.rate_limit.policies.retain(|p| p.name != "user-writes");
    })
    .await;
    let t = token(&mocks, "5", "bff-web", &[]).await;
    let auth = format!("Bearer {t}");
    let url = format!("{}/api/cart/items", gw.url);
    let huge = format!(
        r#"{{"product_id":"{}","quantity":1}}"#,
        "1".repeat(1024 * 1024)
    );
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    // (what, content type, body, status, code, JSON Pointer of the first error)
    type Case<'a> = (&'a str, &'a str, Vec<u8>, u16, &'a str, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "wrong content type",
            "text/plain",
            br#"{"product_id":"42","quantity":1}"#.to_vec(),
            415,
            "unsupported_media_type",
            None,
        ),
        (
            "form content type",
            "application/x-www-form-urlencoded",
            b"product_id=42".to_vec(),
            415,
            "unsupported_media_type",
            None,
        ),
        (
            "invalid UTF-8",
            JSON,
            b"{\"product_id\":\"4\xff\",\"quantity\":1}".to_vec(),
            400,
            "malformed_body",
            None,
        ),
        (
            "truncated JSON",
            JSON,
            br#"{"product_id":"42","quan"#.to_vec(),
            400,
            "malformed_body",
            None,
        ),
        (
            "trailing garbage",
            JSON,
            br#"{"product_id":"42","quantity":1} {}"#.to_vec(),
            400,
            "malformed_body",
            None,
        ),
        (
            "duplicate keys",
            JSON,
            br#"{"product_id":"42","quantity":1,"quantity":20}"#.to_vec(),
            422,
            "invalid_body",
            Some("/quantity"),
        ),
        (
            "number out of range",
            JSON,
            br#"{"product_id":"42","quantity":4294967296}"#.to_vec(),
            422,
            "invalid_body",
            Some("/quantity"),
        ),
        (
            "negative number",
            JSON,
            br#"{"product_id":"42","quantity":-1}"#.to_vec(),
            422,
            "invalid_body",
            Some("/quantity"),
        ),
        (
            "wrong type",
            JSON,
            br#"{"product_id":42,"quantity":1}"#.to_vec(),
            422,
            "invalid_body",
            Some("/product_id"),
        ),
        (
            "unknown field",
            JSON,
            br#"{"product_id":"42","quantity":1,"price":1}"#.to_vec(),
            422,
            "invalid_body",
            Some("/price"),
        ),
        (
            "missing field",
            JSON,
            br#"{"product_id":"42"}"#.to_vec(),
            422,
            "invalid_body",
            Some("/quantity"),
        ),
        (
            "semantic: quantity",
            JSON,
            br#"{"product_id":"42","quantity":21}"#.to_vec(),
            422,
            "invalid_body",
            Some("/quantity"),
        ),
        (
            "10,000-deep nesting",
            JSON,
            deep.into_bytes(),
            400,
            "malformed_body",
            None,
        ),
        (
            "1 MB string",
            JSON,
            huge.into_bytes(),
            413,
            "payload_too_large",
            None,
        ),
    ];
    for (what, content_type, body, status, code, pointer) in cases {
        let reply = send(
            "POST",
            &url,
            &[("authorization", &auth), ("content-type", content_type)],
            body,
        )
        .await;
        reply.assert_problem(status, code, &mocks);
        if let Some(pointer) = pointer {
            assert_eq!(
                reply.json()["errors"][0]["pointer"],
                pointer,
                "{what}: {}",
                reply.body
            );
        }
    }
    // A gzip body where none is accepted, and a gzip bomb where gzip is accepted (limit after decompression).
    let bomb = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(br#"{"payment_method":""#).unwrap();
        e.write_all(&vec![b'a'; 20 * 1024 * 1024]).unwrap();
        e.write_all(br#""}"#).unwrap();
        e.finish().unwrap()
    };
    assert!(bomb.len() < 100 * 1024, "compressed: {}", bomb.len());
    let gz = [
        ("authorization", auth.as_str()),
        ("content-type", JSON),
        ("content-encoding", "gzip"),
    ];
    send("POST", &url, &gz, bomb.clone()).await.assert_problem(
        415,
        "unsupported_media_type",
        &mocks,
    );
    send("POST", &format!("{}/api/orders", gw.url), &gz, bomb)
        .await
        .assert_problem(413, "payload_too_large", &mocks);
    // A small gzip body on the configured route is accepted (the cart is empty: the service refuses it).
    let small = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(br#"{"payment_method":"card"}"#).unwrap();
        e.finish().unwrap()
    };
    send("POST", &format!("{}/api/orders", gw.url), &gz, small)
        .await
        .assert_problem(409, "cart_empty", &mocks);
    assert_eq!(
        posts(&mocks, Service::Orders, "POST /users/{id}/cart/items"),
        0,
        "nothing reached the service"
    );
    assert_eq!(
        mocks
            .handle(Service::Orders)
            .route_count("GET /users/{id}/cart"),
        0
    );
}

/// A body longer than its `Content-Length`: the gateway reads the declared bytes (a truncated JSON: 400),
/// and the rest is not a request; nothing reaches the service. A declared length over the limit is a 413
/// before any byte is read.
#[tokio::test]
async fn body_larger_than_declared() {
    let (mocks, gw) = web_with(|_| {}).await;
    let t = token(&mocks, "5", "bff-web", &[]).await;
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let raw = |declared: usize| {
        format!(
            "POST /api/cart/items HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {t}\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\nconnection: close\r\n\r\n{{\"product_id\":\"42\",\"quantity\":1}}"
        )
    };
    for (declared, status) in [(10usize, "400"), (10 * 1024 * 1024, "413")] {
        let request = raw(declared);
        let answer = tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr_of(&request)).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(request.as_bytes()).unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        })
        .await
        .unwrap();
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{answer}"
        );
        assert!(answer.contains("application/problem+json"), "{answer}");
    }
    assert_eq!(
        posts(&mocks, Service::Orders, "POST /users/{id}/cart/items"),
        0
    );
}

/// The host:port of a raw request (from its `host` header).
fn addr_of(request: &str) -> String {
    request
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap_or_default()
        .to_owned()
}

/// Partner orders need `orders:write` and an `Idempotency-Key`; a malformed key is a 400; nothing reaches the
/// orders service.
#[tokio::test]
async fn partner_key_rules() {
    let mocks = mocks().await;
    let gw = start(
        bff_partner::app,
        config_for(bff_partner::defaults(), &mocks),
    )
    .await;
    let url = format!("{}/v1/orders", gw.url);
    let body = br#"{"items":[{"product_id":"42","quantity":1}]}"#.to_vec();
    let with = |key: Option<&'static str>, api: &'static str| {
        let mut h = vec![("x-api-key", api), ("content-type", JSON)];
        if let Some(k) = key {
            h.push(("idempotency-key", k));
        }
        h
    };
    send("POST", &url, &with(None, "dev-acme-key"), body.clone())
        .await
        .assert_problem(400, "idempotency_key_missing", &mocks);
    for bad in ["\"\"", "\"unterminated", "a\"b"] {
        let h = vec![
            ("x-api-key", "dev-acme-key"),
            ("content-type", JSON),
            ("idempotency-key", bad),
        ];
        send("POST", &url, &h, body.clone()).await.assert_problem(
            400,
            "idempotency_key_invalid",
            &mocks,
        );
    }
    let long = "k".repeat(256);
    let h = vec![
        ("x-api-key", "dev-acme-key"),
        ("content-type", JSON),
        ("idempotency-key", long.as_str()),
    ];
    send("POST", &url, &h, body.clone()).await.assert_problem(
        400,
        "idempotency_key_invalid",
        &mocks,
    );
    send(
        "POST",
        &url,
        &with(Some("k1"), "dev-globex-key"),
        body.clone(),
    )
    .await
    .assert_problem(403, "forbidden", &mocks);
    let bad = br#"{"items":[{"product_id":"42","quantity":1},{"product_id":"42","quantity":0}]}"#
        .to_vec();
    let r = send("POST", &url, &with(Some("k2"), "dev-acme-key"), bad).await;
    r.assert_problem(422, "invalid_body", &mocks);
    let problem = r.json();
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/items/1/product_id", "/items/1/quantity"]);
    assert_eq!(posts(&mocks, Service::Orders, "POST /orders"), 0);
    let ok = send("POST", &url, &with(Some("k3"), "dev-acme-key"), body).await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    assert_eq!(
        ok.json()["items"][0]["sku"].as_str().map(|s| !s.is_empty()),
        Some(true)
    );
    let id = ok.json()["id"].as_str().unwrap().to_owned();
    let read = send(
        "GET",
        &format!("{url}/{id}"),
        &[("x-api-key", "dev-acme-key")],
        vec![],
    )
    .await;
    assert_eq!(read.status, 200, "the partner reads its new order");
}

/// Same key + same body → the stored answer, marked replayed, one downstream call; same key + other body →
/// 422; the same key from another caller is another record.
#[tokio::test]
async fn replay_reuse_and_caller_scope() {
    let mocks = mocks().await;
    let gw = start(
        bff_partner::app,
        config_for(bff_partner::defaults(), &mocks),
    )
    .await;
    let mut other = bff_partner::defaults();
    other.auth.api_keys[1].scopes.push("orders:write".into());
    let gw2 = start(bff_partner::app, config_for(other, &mocks)).await;
    let order = |gw: &str, api: &'static str, qty: u32| {
        let url = format!("{gw}/v1/orders");
        async move {
            let h = [
                ("x-api-key", api),
                ("content-type", JSON),
                ("idempotency-key", "\"same-key\""),
            ];
            send(
                "POST",
                &url,
                &h,
                format!(r#"{{"items":[{{"product_id":"42","quantity":{qty}}}]}}"#).into_bytes(),
            )
            .await
        }
    };
    let first = order(&gw.url, "dev-acme-key", 1).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert!(first.header("idempotent-replayed").is_none());
    let again = order(&gw.url, "dev-acme-key", 1).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.body, first.body);
    assert_eq!(
        posts(&mocks, Service::Orders, "POST /orders"),
        1,
        "one order placed"
    );
    order(&gw.url, "dev-acme-key", 2)
        .await
        .assert_problem(422, "idempotency_key_reused", &mocks);
    let globex = order(&gw2.url, "dev-globex-key", 1).await;
    assert_eq!(globex.status, 201, "{}", globex.body);
    assert!(globex.header("idempotent-replayed").is_none());
    assert_ne!(
        globex.json()["id"],
        first.json()["id"],
        "another caller's key is another record"
    );
    assert_eq!(posts(&mocks, Service::Orders, "POST /orders"), 2);
}

/// Two instances sharing a real Redis: concurrent requests with one key → one order, the other 409 while it
/// runs, then a replay from the other instance.
#[tokio::test]
async fn two_instances_share_keys_in_redis() {
    let redis = RedisServer::start();
    let mocks = mocks().await;
    let config = || {
        let mut c = config_for(bff_partner::defaults(), &mocks);
        c.idempotency.store = StoreKind::Redis;
        c.idempotency.redis.url = redis.url();
        c
    };
    let (a, b) = (
        start(bff_partner::app, config()).await,
        start(bff_partner::app, config()).await,
    );
    mocks.handle(Service::Orders).add_fault(
        FaultRule::new(FaultKind::Latency {
            ms: 600,
            jitter_ms: 0,
        })
        .with_prefix("/orders"),
    );
    let body = br#"{"items":[{"product_id":"42","quantity":3}]}"#.to_vec();
    let h = [
        ("x-api-key", "dev-acme-key"),
        ("content-type", JSON),
        ("idempotency-key", "shared-1"),
    ];
    let url_a = format!("{}/v1/orders", a.url);
    let first = send("POST", &url_a, &h, body.clone());
    let second = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        send("POST", &format!("{}/v1/orders", b.url), &h, body.clone()).await
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.status, 201, "{}", first.body);
    second.assert_problem(409, "idempotency_key_in_flight", &mocks);
    mocks.handle(Service::Orders).clear_faults();
    let replay = send("POST", &format!("{}/v1/orders", b.url), &h, body).await;
    assert_eq!(replay.status, 201);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        replay.header("location"),
        first.header("location"),
        "kept in Redis too"
    );
    assert_eq!(replay.json()["id"], first.json()["id"]);
    assert_eq!(
        posts(&mocks, Service::Orders, "POST /orders"),
        1,
        "one order across both instances"
    );
}

/// A command that times out answers 504 `outcome_unknown` and is not stored; the client's retry with the same
/// key is safe: the service received the same forwarded key and answers the first order again.
#[tokio::test]
async fn timeout_then_safe_retry() {
    let mocks = mocks().await;
    let mut config = config_for(bff_partner::defaults(), &mocks);
    config.downstreams.get_mut("orders").unwrap().timeout_ms = 300;
    config
        .downstreams
        .get_mut("orders")
        .unwrap()
        .resilience
        .retry
        .max_retries = 3;
    let gw = start(bff_partner::app, config).await;
    mocks.handle(Service::Orders).add_fault(
        FaultRule::new(FaultKind::Latency {
            ms: 700,
            jitter_ms: 0,
        })
        .with_prefix("/orders"),
    );
    let body = br#"{"items":[{"product_id":"42","quantity":1}]}"#.to_vec();
    let h = [
        ("x-api-key", "dev-acme-key"),
        ("content-type", JSON),
        ("idempotency-key", "slow-1"),
    ];
    let url = format!("{}/v1/orders", gw.url);
    let timed_out = send("POST", &url, &h, body.clone()).await;
    timed_out.assert_problem(504, "outcome_unknown", &mocks);
    assert!(
        timed_out.json()["detail"]
            .as_str()
            .unwrap()
            .contains("same Idempotency-Key")
    );
    assert_eq!(
        posts(&mocks, Service::Orders, "POST /orders"),
        1,
        "never retried"
    );
    // The first attempt did create the order (the mock finishes after the gateway gave up).
    tokio::time::sleep(Duration::from_millis(600)).await;
    mocks.handle(Service::Orders).clear_faults();
    let retry = send("POST", &url, &h, body).await;
    assert_eq!(retry.status, 201, "{}", retry.body);
    assert!(
        retry.header("idempotent-replayed").is_none(),
        "the gateway ran it again"
    );
    assert_eq!(
        retry.json()["id"],
        "10000001",
        "the service deduplicated: still one order"
    );
    assert_eq!(posts(&mocks, Service::Orders, "POST /orders"), 2);
}

/// A failing service (503) is a 502 for the client, the POST is not retried, and the key is released: the
/// retry runs the command.
#[tokio::test]
async fn downstream_failure_is_not_stored() {
    let (mocks, gw) = web_with(|c| {
        c.downstreams
            .get_mut("orders")
            .unwrap()
            .resilience
            .retry
            .max_retries = 3
    })
    .await;
    let t = token(&mocks, "11", "bff-web", &[]).await;
    let url = format!("{}/api/cart/items", gw.url);
    let body = json!({"product_id": PRODUCT, "quantity": 1});
    mocks
        .handle(Service::Orders)
        .add_fault(FaultRule::new(FaultKind::Error { status: 503 }).with_prefix("/users/11/cart"));
    post(&url, &t, Some("cart-1"), &body)
        .await
        .assert_problem(502, "bad_gateway", &mocks);
    assert_eq!(
        posts(&mocks, Service::Orders, "POST /users/{id}/cart/items"),
        1,
        "never retried"
    );
    mocks.handle(Service::Orders).clear_faults();
    let ok = post(&url, &t, Some("cart-1"), &body).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.header("idempotent-replayed").is_none());
    assert_eq!(ok.json()["items"][0]["quantity"], 1);
}

/// Writes have their own, tighter per-user limit (burst 10): the 11th write in a burst is a 429, while reads
/// are still admitted.
#[tokio::test]
async fn writes_are_limited_tighter() {
    let (mocks, gw) = web_with(|_| {}).await;
    let t = token(&mocks, "12", "bff-web", &[]).await;
    let url = format!("{}/api/cart/items", gw.url);
    let mut statuses = Vec::new();
    for _ in 0..11 {
        statuses.push(
            post(
                &url,
                &t,
                None,
                &json!({"product_id": "7", "quantity": 1, "x": 1}),
            )
            .await
            .status,
        );
    }
    assert_eq!(statuses[..10], [422; 10]);
    assert_eq!(statuses[10], 429);
    let read = common::get_auth(&format!("{}/api/cart", gw.url), &t).await;
    assert_eq!(read.status, 200);
}

/// The mobile checkout answers lean, and the OpenAPI documents of all three gateways describe every write
/// with its request body and problem+json errors.
#[tokio::test]
async fn mobile_checkout_and_openapi() {
    let mocks = mocks().await;
    let gw = start(bff_mobile::app, config_for(bff_mobile::defaults(), &mocks)).await;
    let t = token(&mocks, "14", "bff-mobile", &[]).await;
    let orders = mocks.handle(Service::Orders).url();
    let added = client()
        .post(format!("{orders}/users/14/cart/items"))
        .json(&json!({"product_id": PRODUCT, "quantity": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 200);
    let placed = post(
        &format!("{}/api/orders", gw.url),
        &t,
        Some("m-1"),
        &json!({"payment_method": "card"}),
    )
    .await;
    assert_eq!(placed.status, 201, "{}", placed.body);
    let keys: Vec<String> = placed.json().as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["id", "item_count", "status", "total"]);
    assert_eq!(placed.json()["item_count"], 2);
    let web = start(bff_web::app, config_for(bff_web::defaults(), &mocks)).await;
    let partner = start(
        bff_partner::app,
        config_for(bff_partner::defaults(), &mocks),
    )
    .await;
    let doc = |url: String| async move {
        common::get(&format!("{url}/openapi.json"), &[])
            .await
            .json()
    };
    let docs = [
        (
            doc(web.url.clone()).await,
            vec![
                ("/api/cart/items", "post"),
                ("/api/cart/items/{product_id}", "delete"),
                ("/api/orders", "post"),
                ("/api/products/{id}/reviews", "post"),
            ],
        ),
        (doc(gw.url.clone()).await, vec![("/api/orders", "post")]),
        (doc(partner.url.clone()).await, vec![("/v1/orders", "post")]),
    ];
    for (doc, writes) in docs {
        for (path, method) in writes {
            let op = &doc["paths"][path][method];
            assert!(op.is_object(), "{path} {method}");
            if method == "post" {
                assert!(
                    op["requestBody"]["content"]["application/json"].is_object(),
                    "{path}"
                );
                assert!(
                    op["responses"]["422"]["content"]["application/problem+json"].is_object(),
                    "{path}"
                );
            }
            assert!(
                op["responses"]["504"]["content"]["application/problem+json"].is_object(),
                "{path}"
            );
        }
    }
}

/// Commands are never coalesced: two identical concurrent adds (no key) are two calls and two units.
#[tokio::test]
async fn identical_commands_are_not_coalesced() {
    let (mocks, gw) = web_with(|_| {}).await;
    let t = token(&mocks, "15", "bff-web", &[]).await;
    mocks.handle(Service::Orders).add_fault(
        FaultRule::new(FaultKind::Latency {
            ms: 200,
            jitter_ms: 0,
        })
        .with_prefix("/users/15/cart"),
    );
    let url = format!("{}/api/cart/items", gw.url);
    let body = json!({"product_id": PRODUCT, "quantity": 1});
    let (a, b) = tokio::join!(post(&url, &t, None, &body), post(&url, &t, None, &body));
    assert_eq!((a.status, b.status), (200, 200), "{} {}", a.body, b.body);
    assert_eq!(
        posts(&mocks, Service::Orders, "POST /users/{id}/cart/items"),
        2
    );
    mocks.handle(Service::Orders).clear_faults();
    let cart = common::get_auth(&format!("{}/api/cart", gw.url), &t).await;
    assert_eq!(cart.json()["items"][0]["quantity"], 2);
}

/// An idempotency store that cannot answer refuses the command (503 `idempotency_unavailable`) instead of
/// running it unprotected; without a key the command runs.
#[tokio::test]
async fn unreachable_store_refuses_keyed_commands() {
    let (mocks, gw) = web_with(|c| {
        c.idempotency.store = StoreKind::Redis;
        c.idempotency.redis.url = "redis+unix:///nonexistent/bff-test.sock".into();
        c.idempotency.redis.timeout_ms = 100;
    })
    .await;
    let t = token(&mocks, "16", "bff-web", &[]).await;
    let url = format!("{}/api/cart/items", gw.url);
    let body = json!({"product_id": PRODUCT, "quantity": 1});
    post(&url, &t, Some("k"), &body)
        .await
        .assert_problem(503, "idempotency_unavailable", &mocks);
    assert_eq!(
        posts(&mocks, Service::Orders, "POST /users/{id}/cart/items"),
        0
    );
    assert_eq!(post(&url, &t, None, &body).await.status, 200);
}

/// One instance (memory store): the same key while the first request runs is a 409, and nothing is
/// ordered twice.
#[tokio::test]
async fn same_key_in_flight_on_one_instance() {
    let mocks = mocks().await;
    let gw = start(
        bff_partner::app,
        config_for(bff_partner::defaults(), &mocks),
    )
    .await;
    mocks.handle(Service::Orders).add_fault(
        FaultRule::new(FaultKind::Latency {
            ms: 500,
            jitter_ms: 0,
        })
        .with_prefix("/orders"),
    );
    let url = format!("{}/v1/orders", gw.url);
    let body = br#"{"items":[{"product_id":"42","quantity":1}]}"#.to_vec();
    let h = [
        ("x-api-key", "dev-acme-key"),
        ("content-type", JSON),
        ("idempotency-key", "mem-1"),
    ];
    let second = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        send("POST", &url, &h, body.clone()).await
    };
    let (first, second) = tokio::join!(send("POST", &url, &h, body.clone()), second);
    assert_eq!(first.status, 201, "{}", first.body);
    second.assert_problem(409, "idempotency_key_in_flight", &mocks);
    assert_eq!(posts(&mocks, Service::Orders, "POST /orders"), 1);
}
