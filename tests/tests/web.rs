//! Black-box tests of bff-web over real HTTP: composition, partial responses, failures, auth, identity
//! propagation, health and docs.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mock_services::{FaultKind, FaultRule, Service};
use serde_json::json;

const AUD: &str = "bff-web";

/// Home composes profile, recent orders enriched with products, and recommendations with price and stock.
#[tokio::test]
async fn home_is_composed_and_shaped() {
    let (mocks, gw) = web().await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let r = get_auth(&format!("{}/api/home", gw.url), &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("bff-partial").is_none());
    let home = r.json();
    assert_eq!(home["profile"]["id"], "7");
    assert!(home["profile"]["first_name"].is_string());
    let orders = home["recent_orders"].as_array().unwrap();
    assert!(!orders.is_empty() && orders.len() <= 5);
    for line in orders.iter().flat_map(|o| o["items"].as_array().unwrap()) {
        assert_eq!(
            line["product"]["id"], line["product_id"],
            "every line is enriched"
        );
        assert!(line["product"]["name"].is_string());
    }
    let recs = home["recommendations"].as_array().unwrap();
    assert!(!recs.is_empty());
    for rec in recs {
        assert!(rec["price"]["amount_cents"].is_i64());
        assert!(rec["in_stock"].is_boolean());
    }
    for internal in [
        "risk_score",
        "crm_id",
        "cost_cents",
        "processor_ref",
        "card_last4",
        "internal_notes",
        "warehouse",
    ] {
        assert!(
            !r.body.contains(internal),
            "internal field {internal} leaked"
        );
    }
    // At most one batch call per enrichment, not one call per product (the batcher may merge both
    // enrichments into one call when they fall in the same window).
    let batches = mocks.handle(Service::Catalog).route_count("GET /products");
    assert!((1..=2).contains(&batches), "{batches}");
    assert_eq!(
        mocks
            .handle(Service::Catalog)
            .route_count("GET /products/{id}"),
        0
    );
    assert_eq!(
        mocks
            .handle(Service::Inventory)
            .route_count("GET /inventory"),
        1
    );
}

/// Three downstreams delayed 400 ms each are called in parallel: far less than the 1.2 s a sequence takes.
#[tokio::test]
async fn parts_run_in_parallel() {
    let (mocks, gw) = web().await;
    let token = token(&mocks, "7", AUD, &[]).await;
    for service in [Service::Users, Service::Orders, Service::Recommendations] {
        mocks
            .handle(service)
            .set_faults(vec![FaultRule::new(FaultKind::Latency {
                ms: 400,
                jitter_ms: 0,
            })]);
    }
    let started = Instant::now();
    let r = get_auth(&format!("{}/api/home", gw.url), &token).await;
    let elapsed = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_millis(1100),
        "sequential? {elapsed:?}"
    );
}

/// Every fault mode on an optional part gives 200, the part null and `bff-partial` naming it.
#[tokio::test]
async fn optional_part_faults_give_partial_responses() {
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    config
        .downstreams
        .get_mut("recommendations")
        .unwrap()
        .timeout_ms = 400;
    let gw = start(bff_web::app, config).await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let faults = [
        FaultKind::Error { status: 500 },
        FaultKind::Error { status: 404 },
        FaultKind::Reset,
        FaultKind::Hang,
        FaultKind::MalformedJson,
        FaultKind::SlowDrip {
            bytes_per_chunk: 8,
            interval_ms: 100,
        },
        FaultKind::Oversized {
            bytes: 5 * 1024 * 1024,
        },
        FaultKind::Latency {
            ms: 1_000,
            jitter_ms: 0,
        },
    ];
    for fault in faults {
        mocks
            .handle(Service::Recommendations)
            .set_faults(vec![FaultRule::new(fault.clone())]);
        let r = get_auth(&format!("{}/api/home", gw.url), &token).await;
        assert_eq!(r.status, 200, "{fault:?}: {}", r.body);
        assert_eq!(
            r.header("bff-partial"),
            Some("recommendations"),
            "{fault:?}"
        );
        let home = r.json();
        assert!(home["recommendations"].is_null(), "{fault:?}");
        assert_eq!(home["profile"]["id"], "7");
        assert_no_leak(
            &r.body.replace(
                &home["profile"]["email"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                "",
            ),
            &mocks,
        );
    }
}

/// A failed required part fails the request with the contract's status and a problem that leaks nothing.
#[tokio::test]
async fn required_part_failures_map_to_statuses() {
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    config.server.request_timeout_ms = 800;
    let gw = start(bff_web::app, config).await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let url = format!("{}/api/home", gw.url);
    let users = mocks.handle(Service::Users);
    let cases = [
        (FaultKind::Error { status: 500 }, 502, "bad_gateway"),
        (FaultKind::MalformedJson, 502, "bad_gateway"),
        (
            FaultKind::Oversized {
                bytes: 5 * 1024 * 1024,
            },
            502,
            "bad_gateway",
        ),
        (FaultKind::Reset, 502, "bad_gateway"),
        (FaultKind::Hang, 504, "deadline_exceeded"),
    ];
    for (fault, status, code) in cases {
        users.set_faults(vec![FaultRule::new(fault.clone())]);
        let started = Instant::now();
        let r = get_auth(&url, &token).await;
        r.assert_problem(status, code, &mocks);
        assert_eq!(r.json()["part"], "profile", "{fault:?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{fault:?} took {:?}",
            started.elapsed()
        );
    }
    users.clear_faults();
    // An unknown user is a 404 of the required part.
    let ghost = common::token(&mocks, "99999", AUD, &[]).await;
    get_auth(&url, &ghost)
        .await
        .assert_problem(404, "not_found", &mocks);
}

/// An unreachable required downstream is 503.
#[tokio::test]
async fn unreachable_required_part_is_503() {
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    config.downstreams.get_mut("users").unwrap().url =
        format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let gw = start(bff_web::app, config).await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let r = get_auth(&format!("{}/api/home", gw.url), &token).await;
    r.assert_problem(503, "downstream_unavailable", &mocks);
    // And readiness says so.
    get(&format!("{}/readyz", gw.url), &[])
        .await
        .assert_problem(503, "not_ready", &mocks);
}

/// Invalid credentials of every kind are 401 problem+json.
#[tokio::test]
async fn auth_rejections() {
    let (mocks, gw) = web().await;
    let url = format!("{}/api/home", gw.url);
    let valid = token(&mocks, "7", AUD, &[]).await;
    let expired = mint(
        &mocks,
        json!({"sub": "7", "aud": AUD, "time_offset_s": -3600}),
    )
    .await;
    let future = mint(
        &mocks,
        json!({"sub": "7", "aud": AUD, "time_offset_s": 3600}),
    )
    .await;
    let other_audience = token(&mocks, "7", "bff-mobile", &[]).await;
    let other_issuer = mint(
        &mocks,
        json!({"sub": "7", "aud": AUD, "iss": "https://evil.example"}),
    )
    .await;
    let no_exp = mint(&mocks, json!({"sub": "7", "aud": AUD, "omit_exp": true})).await;
    let mut tampered = valid.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let (header, rest) = valid.split_once('.').unwrap();
    let payload = rest.split('.').next().unwrap();
    let _ = header;
    let alg_none = format!(
        "{}.{payload}.",
        b64(br#"{"alg":"none","typ":"JWT","kid":"rsa-1"}"#)
    );
    let swapped_claims = {
        let evil = b64(format!(
            r#"{{"sub":"1","aud":"{AUD}","iss":"bff-dev-idp","exp":9999999999}}"#
        )
        .as_bytes());
        let parts: Vec<&str> = valid.split('.').collect();
        format!("{}.{evil}.{}", parts[0], parts[2])
    };
    let rogue = rogue_token("rsa-1");
    let unknown_kid = rogue_token("no-such-key");
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("missing", vec![]),
        (
            "not bearer",
            vec![("authorization", format!("Basic {valid}"))],
        ),
        (
            "garbage",
            vec![("authorization", "Bearer not.a.jwt".into())],
        ),
        (
            "expired",
            vec![("authorization", format!("Bearer {expired}"))],
        ),
        (
            "not yet valid",
            vec![("authorization", format!("Bearer {future}"))],
        ),
        (
            "wrong audience",
            vec![("authorization", format!("Bearer {other_audience}"))],
        ),
        (
            "wrong issuer",
            vec![("authorization", format!("Bearer {other_issuer}"))],
        ),
        (
            "no exp",
            vec![("authorization", format!("Bearer {no_exp}"))],
        ),
        (
            "bad signature",
            vec![("authorization", format!("Bearer {tampered}"))],
        ),
        (
            "swapped claims",
            vec![("authorization", format!("Bearer {swapped_claims}"))],
        ),
        (
            "alg none",
            vec![("authorization", format!("Bearer {alg_none}"))],
        ),
        (
            "forged with a rogue key",
            vec![("authorization", format!("Bearer {rogue}"))],
        ),
        (
            "unknown kid",
            vec![("authorization", format!("Bearer {unknown_kid}"))],
        ),
        (
            "two credentials",
            vec![
                ("authorization", format!("Bearer {valid}")),
                ("authorization", format!("Bearer {valid}")),
            ],
        ),
    ];
    for (name, headers) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let r = get(&url, &headers).await;
        assert_eq!(r.status, 401, "{name}: {}", r.body);
        r.assert_problem(401, "unauthenticated", &mocks);
        assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{name}");
    }
    assert_eq!(get_auth(&url, &valid).await.status, 200);
    // ES256 tokens are accepted too.
    let es = mint(&mocks, json!({"sub": "7", "aud": AUD, "alg": "ES256"})).await;
    assert_eq!(get_auth(&url, &es).await.status, 200);
}

fn b64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A well-formed RS256 token signed by a key the identity provider never published.
fn rogue_token(kid: &str) -> String {
    bff_core::auth::jwt_crypto::install();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!("../fixtures/rogue-rsa.pem"))
        .unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.into());
    let now = jsonwebtoken::get_current_timestamp();
    let claims =
        json!({"sub": "1", "aud": AUD, "iss": "bff-dev-idp", "iat": now, "exp": now + 300});
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// After the identity provider rotates its keys, tokens signed with the new key are accepted (the JWKS is
/// refetched on the unknown kid) and tokens of the previous key still are during the grace period.
#[tokio::test]
async fn key_rotation_is_seamless() {
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    config.auth.jwt.jwks_min_refresh_ms = 0;
    let gw = start(bff_web::app, config).await;
    let url = format!("{}/api/home", gw.url);
    let old = token(&mocks, "7", AUD, &[]).await;
    assert_eq!(get_auth(&url, &old).await.status, 200);
    let rotated = client()
        .post(format!(
            "{}/admin/rotate-keys",
            mocks.url(Service::Identity)
        ))
        .send()
        .await
        .unwrap();
    assert!(rotated.status().is_success());
    let new = token(&mocks, "7", AUD, &[]).await;
    assert_ne!(
        jsonwebtoken::decode_header(&new).unwrap().kid,
        jsonwebtoken::decode_header(&old).unwrap().kid
    );
    assert_eq!(get_auth(&url, &new).await.status, 200, "new key accepted");
    assert_eq!(
        get_auth(&url, &old).await.status,
        200,
        "old key still accepted in grace"
    );
}

/// Client-sent identity headers are stripped; the downstream sees only the verified identity, the request id
/// and the trace id of the client.
#[tokio::test]
async fn identity_and_trace_propagation() {
    let (mocks, gw) = web().await;
    let token = token(&mocks, "7", AUD, &["orders:read"]).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = get(
        &format!("{}/api/home", gw.url),
        &[
            ("authorization", &format!("Bearer {token}")),
            ("x-bff-user-id", "999"),
            ("x-bff-scopes", "admin"),
            ("x-bff-partner-id", "acme"),
            ("x-request-id", "req-abc-123"),
            ("traceparent", &format!("00-{trace_id}-00f067aa0ba902b7-01")),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-request-id"), Some("req-abc-123"));
    assert!(r.header("traceparent").unwrap().contains(trace_id));
    let users = mocks.handle(Service::Users);
    assert_eq!(users.last_header("x-bff-user-id").as_deref(), Some("7"));
    assert_eq!(
        users.last_header("x-bff-scopes").as_deref(),
        Some("orders:read")
    );
    assert_eq!(users.last_header("x-bff-client").as_deref(), Some(AUD));
    assert_eq!(users.last_header("x-bff-partner-id"), None);
    assert_eq!(
        users.last_header("authorization"),
        None,
        "the token is not forwarded"
    );
    assert_eq!(
        users.last_header("x-request-id").as_deref(),
        Some("req-abc-123")
    );
    let tp = users.last_header("traceparent").unwrap();
    assert!(
        tp.starts_with(&format!("00-{trace_id}-")) && !tp.contains("00f067aa0ba902b7"),
        "{tp}"
    );
    // Without a request id, one is generated and still propagated.
    let r = get_auth(&format!("{}/api/home", gw.url), &token).await;
    let generated = r.header("x-request-id").unwrap().to_owned();
    assert_eq!(users.last_header("x-request-id"), Some(generated));
}

/// The product page composes product, rating, reviews, availability and related products; unknown ids 404.
#[tokio::test]
async fn product_page() {
    let (mocks, gw) = web_uncached().await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let r = get_auth(&format!("{}/api/products/42", gw.url), &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let p = r.json();
    assert_eq!(p["id"], "42");
    assert!(p["rating"]["count"].is_u64());
    assert!(p["reviews"].is_array());
    assert!(p["availability"]["in_stock"].is_boolean());
    assert!(!p["related"].as_array().unwrap().is_empty());
    for internal in [
        "\"moderation\"",
        "\"user_id\"",
        "\"supplier_id\"",
        "\"warehouses\"",
    ] {
        assert!(!r.body.contains(internal), "{internal} leaked");
    }
    for bad in ["99999", "abc"] {
        get_auth(&format!("{}/api/products/{bad}", gw.url), &token)
            .await
            .assert_problem(404, "not_found", &mocks);
    }
    for bad in ["..%2F..%2Fadmin", "%2e%2e"] {
        get_auth(&format!("{}/api/products/{bad}", gw.url), &token)
            .await
            .assert_problem(400, "bad_request", &mocks);
    }
    // Reviews down: still a page, marked partial.
    mocks
        .handle(Service::Reviews)
        .set_faults(vec![FaultRule::new(FaultKind::Error { status: 503 })]);
    let r = get_auth(&format!("{}/api/products/42", gw.url), &token).await;
    assert_eq!(r.status, 200);
    let partial = r.header("bff-partial").unwrap();
    assert!(
        partial.contains("rating") && partial.contains("reviews"),
        "{partial}"
    );
}

/// The listing validates its query and pages through the catalog.
#[tokio::test]
async fn product_listing() {
    let (mocks, gw) = web().await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let r = get_auth(
        &format!(
            "{}/api/products?category=kitchen&page=2&page_size=5",
            gw.url
        ),
        &token,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let list = r.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 5);
    assert_eq!(list["page"], 2);
    assert_eq!(list["total"], 500);
    for bad in [
        "page_size=500",
        "page=0",
        "category=../x",
        "unknown=1",
        "page=abc",
    ] {
        get_auth(&format!("{}/api/products?{bad}", gw.url), &token)
            .await
            .assert_problem(400, "bad_request", &mocks);
    }
}

/// An order needs `orders:read`, belongs to its user only, and is enriched with product details.
#[tokio::test]
async fn order_detail_scope_and_ownership() {
    let (mocks, gw) = web().await;
    let url = format!("{}/api/orders/701", gw.url);
    let owner = token(&mocks, "7", AUD, &["orders:read"]).await;
    let r = get_auth(&url, &owner).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let o = r.json();
    assert_eq!(o["id"], "701");
    assert!(o["items"][0]["product"]["name"].is_string());
    assert!(!r.body.contains("card_last4") && !r.body.contains("processor_ref"));
    let no_scope = token(&mocks, "7", AUD, &[]).await;
    get_auth(&url, &no_scope)
        .await
        .assert_problem(403, "forbidden", &mocks);
    let stranger = token(&mocks, "8", AUD, &["orders:read"]).await;
    get_auth(&url, &stranger)
        .await
        .assert_problem(404, "not_found", &mocks);
}

/// Health, readiness, OpenAPI and docs are public; unknown routes and methods are problems.
#[tokio::test]
async fn health_docs_and_fallbacks() {
    let (mocks, gw) = web().await;
    assert_eq!(get(&format!("{}/healthz", gw.url), &[]).await.status, 200);
    assert_eq!(get(&format!("{}/readyz", gw.url), &[]).await.status, 200);
    let doc = get(&format!("{}/openapi.json", gw.url), &[]).await;
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    for path in [
        "/api/home",
        "/api/products/{id}",
        "/api/products",
        "/api/orders/{id}",
    ] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} documented");
    }
    let page = get(&format!("{}/docs", gw.url), &[]).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("/openapi.json"));
    get(&format!("{}/nope", gw.url), &[])
        .await
        .assert_problem(401, "unauthenticated", &mocks);
    let token = token(&mocks, "7", AUD, &[]).await;
    get_auth(&format!("{}/nope", gw.url), &token)
        .await
        .assert_problem(404, "not_found", &mocks);
    let r = client()
        .post(format!("{}/api/home", gw.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

/// A declarative route forwards to its downstream path, encodes parameters and shapes the answer.
#[tokio::test]
async fn declarative_route_forwards_and_shapes() {
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    config.routes.push(bff_core::config::RouteConfig {
        path: "/api/cards/{id}".into(),
        downstream: "catalog".into(),
        downstream_path: "/products/{id}".into(),
        grpc_method: None,
        query_allow: vec!["lang".into()],
        // Naming `authorization` or an `x-bff-*` header here is a configuration error
        // (`hardening.rs::config_errors_name_the_key`).
        header_allow: vec!["accept-language".into()],
        fields: vec!["id".into(), "name".into(), "price.amount_cents".into()],
        scopes: vec![],
    });
    let gw = start(bff_web::app, config).await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let r = get(
        &format!("{}/api/cards/12?lang=de&debug=1", gw.url),
        &[
            ("authorization", &format!("Bearer {token}")),
            ("accept-language", "de"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let card = r.json();
    assert_eq!(card["id"], "12");
    assert!(card["name"].is_string());
    assert!(card["price"]["amount_cents"].is_i64());
    assert!(card["price"].get("currency").is_none() && card.get("internal").is_none());
    let catalog = mocks.handle(Service::Catalog);
    assert_eq!(catalog.last_uri().as_deref(), Some("/products/12?lang=de"));
    assert_eq!(
        catalog.last_header("accept-language").as_deref(),
        Some("de")
    );
    assert_eq!(catalog.last_header("authorization"), None);
    assert_eq!(catalog.last_header("x-bff-user-id").as_deref(), Some("7"));
    // A parameter with `?`, `=` and `#` stays inside its segment of the downstream path.
    let r = get_auth(&format!("{}/api/cards/x%3Fa%3D1%23f", gw.url), &token).await;
    r.assert_problem(404, "not_found", &mocks);
    assert_eq!(
        catalog.last_uri().as_deref(),
        Some("/products/x%3Fa%3D1%23f")
    );
}

/// A declarative route without `fields` forwards the downstream's body as it was sent, unparsed (like a
/// reverse proxy; docs/configuration.md); one with `fields` parses it, so a malformed body is a 502 there.
#[tokio::test]
async fn declarative_pass_through_forwards_bytes_unparsed() {
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    for (path, fields) in [
        ("/api/raw/{id}", vec![]),
        ("/api/card/{id}", vec!["id".into()]),
    ] {
        config.routes.push(bff_core::config::RouteConfig {
            path: path.into(),
            downstream: "catalog".into(),
            downstream_path: "/products/{id}".into(),
            grpc_method: None,
            query_allow: vec![],
            header_allow: vec![],
            fields,
            scopes: vec![],
        });
    }
    let gw = start(bff_web::app, config).await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let catalog = mocks.handle(Service::Catalog);
    catalog.set_faults(vec![FaultRule::new(FaultKind::MalformedJson)]);
    let raw = get_auth(&format!("{}/api/raw/12", gw.url), &token).await;
    assert_eq!(raw.status, 200, "{}", raw.body);
    assert_eq!(raw.body, mock_services::faults::MALFORMED_BODY);
    let shaped = get_auth(&format!("{}/api/card/14", gw.url), &token).await;
    shaped.assert_problem(502, "bad_gateway", &mocks);
    catalog.clear_faults();
    // (Another id: the catalog's answers may be cached by the gateway.)
    let raw = get_auth(&format!("{}/api/raw/13", gw.url), &token).await;
    assert_eq!(raw.status, 200, "{}", raw.body);
    assert_eq!(raw.json()["id"], "13");
}
