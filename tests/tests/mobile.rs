//! Black-box tests of bff-mobile over real HTTP: lean composition (home under 2 KB), ETag revalidation,
//! product and order screens, ownership and scopes, partial responses, auth, health and docs.

mod common;

use common::*;
use mock_services::{FaultKind, FaultRule, Service};
use serde_json::Value;

const AUD: &str = "bff-mobile";

/// The sorted keys of a JSON object.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    k.sort_unstable();
    k
}

/// A downstream resource, fetched directly from its mock (to compare the gateway's view with its source).
async fn source(mocks: &mock_services::MockStack, service: Service, path: &str) -> Value {
    let r = get(&format!("{}{path}", mocks.url(service)), &[]).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.json()
}

/// Home is profile + last 3 orders + 5 recommendations, lean, with one catalog batch call and no
/// per-product call.
#[tokio::test]
async fn home_is_composed_and_lean() {
    let (mocks, gw) = mobile().await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let r = get_auth(&format!("{}/api/home", gw.url), &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("bff-partial").is_none());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("private, no-cache"));
    assert!(
        r.header("etag")
            .is_some_and(|t| t.starts_with('"') && t.ends_with('"'))
    );
    let home = r.json();
    assert_eq!(keys(&home), ["first_name", "orders", "recommendations"]);

    let user = source(&mocks, Service::Users, "/users/7").await;
    assert_eq!(home["first_name"], user["first_name"]);

    let page = source(&mocks, Service::Orders, "/users/7/orders?limit=3").await;
    let expected: Vec<(Value, u64)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let units = o["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["quantity"].as_u64().unwrap())
                .sum();
            (o["id"].clone(), units)
        })
        .collect();
    let orders = home["orders"].as_array().unwrap();
    assert!(orders.len() <= 3);
    let got: Vec<(Value, u64)> = orders
        .iter()
        .map(|o| (o["id"].clone(), o["item_count"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        got, expected,
        "the newest three orders with their unit counts"
    );
    for o in orders {
        assert_eq!(keys(o), ["id", "item_count", "status", "total"]);
        assert!(o["total"]["amount_cents"].is_i64());
    }

    let recs = home["recommendations"].as_array().unwrap();
    assert_eq!(recs.len(), 5, "{}", r.body);
    for rec in recs {
        assert_eq!(keys(rec), ["id", "name", "price", "thumbnail_url"]);
        assert!(rec["name"].is_string());
        assert!(rec["price"]["amount_cents"].is_i64());
        assert!(rec["thumbnail_url"].is_string());
    }
    for internal in [
        "last_name",
        "email",
        "risk_score",
        "crm_id",
        "cost_cents",
        "processor_ref",
        "card_last4",
        "internal_notes",
        "description",
        "score",
        "model_version",
    ] {
        assert!(
            !r.body.contains(&format!("\"{internal}\":")),
            "{internal} leaked: {}",
            r.body
        );
    }
    // One batch call for the recommendations, never one call per product.
    assert_eq!(
        mocks.handle(Service::Catalog).route_count("GET /products"),
        1
    );
    assert_eq!(
        mocks
            .handle(Service::Catalog)
            .route_count("GET /products/{id}"),
        0
    );
}

/// The home body stays under 2 KB for every kind of user.
#[tokio::test]
async fn home_is_under_2kb_for_many_users() {
    let (mocks, gw) = mobile().await;
    let url = format!("{}/api/home", gw.url);
    for user in ["1", "2", "7", "42", "123", "500", "777", "999", "1000"] {
        let token = token(&mocks, user, AUD, &[]).await;
        let r = get_auth(&url, &token).await;
        assert_eq!(r.status, 200, "user {user}: {}", r.body);
        assert!(
            r.body.len() < 2048,
            "user {user}: {} bytes: {}",
            r.body.len(),
            r.body
        );
        assert!(r.json()["recommendations"].is_array(), "user {user}");
    }
}

/// A matching If-None-Match gets an empty 304 with the same tag; a stale tag gets 200; `*` matches.
#[tokio::test]
async fn etag_revalidation() {
    let (mocks, gw) = mobile().await;
    let token = token(&mocks, "7", AUD, &["orders:read"]).await;
    let auth = format!("Bearer {token}");
    let first_order = source(&mocks, Service::Orders, "/users/7/orders?limit=1").await;
    let order_id = first_order["items"][0]["id"].as_str().unwrap().to_owned();
    for path in [
        "/api/home".to_string(),
        "/api/products/1".into(),
        format!("/api/orders/{order_id}"),
    ] {
        let url = format!("{}{path}", gw.url);
        let first = get(&url, &[("authorization", &auth)]).await;
        assert_eq!(first.status, 200, "{path}: {}", first.body);
        let tag = first.header("etag").expect("etag").to_owned();

        let again = get(&url, &[("authorization", &auth), ("if-none-match", &tag)]).await;
        assert_eq!(again.status, 304, "{path}");
        assert!(again.body.is_empty(), "{path}: 304 has no body");
        assert_eq!(again.header("etag"), Some(tag.as_str()), "{path}");
        let policy = again.header("cache-control").unwrap_or_default();
        assert!(policy.starts_with("private, "), "{path}: {policy}");

        let listed = format!("\"0000000000000000\", W/{tag}");
        let weak = get(
            &url,
            &[("authorization", &auth), ("if-none-match", &listed)],
        )
        .await;
        assert_eq!(weak.status, 304, "{path}: a listed (weak) tag matches");

        let star = get(&url, &[("authorization", &auth), ("if-none-match", "*")]).await;
        assert_eq!(star.status, 304, "{path}");

        let stale = get(
            &url,
            &[
                ("authorization", &auth),
                ("if-none-match", "\"0123456789abcdef\""),
            ],
        )
        .await;
        assert_eq!(stale.status, 200, "{path}");
        assert_eq!(stale.body, first.body, "{path}: deterministic body");
        assert_eq!(
            stale.header("etag"),
            Some(tag.as_str()),
            "{path}: stable tag"
        );
    }
    // Without a credential, a tag reveals nothing: 401 first.
    let anon = get(&format!("{}/api/home", gw.url), &[("if-none-match", "*")]).await;
    anon.assert_problem(401, "unauthenticated", &mocks);
}

/// The product screen: lean fields, a word-boundary teaser of at most 140 characters, a rating rounded to
/// one decimal, a stock flag; 404 for an unknown or malformed id.
#[tokio::test]
async fn product_screen() {
    let (mocks, gw) = mobile().await;
    let token = token(&mocks, "7", AUD, &[]).await;
    for id in ["1", "17", "4999"] {
        let r = get_auth(&format!("{}/api/products/{id}", gw.url), &token).await;
        assert_eq!(r.status, 200, "{id}: {}", r.body);
        assert!(r.header("bff-partial").is_none());
        let p = r.json();
        assert_eq!(
            keys(&p),
            [
                "id",
                "in_stock",
                "name",
                "price",
                "rating",
                "short_description",
                "thumbnail_url"
            ]
        );
        let product = source(&mocks, Service::Catalog, &format!("/products/{id}")).await;
        assert_eq!(p["id"], product["id"]);
        assert_eq!(p["name"], product["name"]);
        assert_eq!(p["price"], product["price"]);
        let short = p["short_description"].as_str().unwrap();
        assert!(!short.is_empty() && short.chars().count() <= 140, "{short}");
        let full: String = product["description"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(full.starts_with(short), "a prefix: {short}");
        assert!(
            full.len() == short.len() || full[short.len()..].starts_with(' '),
            "cut at a word: {short}"
        );

        let rating = source(&mocks, Service::Reviews, &format!("/products/{id}/rating")).await;
        let average = p["rating"]["average"].as_f64().unwrap();
        assert!(
            (average - (rating["average"].as_f64().unwrap() * 10.0).round() / 10.0).abs() < 1e-9
        );
        assert_eq!(p["rating"]["count"], rating["count"]);
        let stock = source(&mocks, Service::Inventory, &format!("/inventory/{id}")).await;
        assert_eq!(
            p["in_stock"],
            Value::Bool(stock["available"].as_u64().unwrap() > 0)
        );
        for internal in [
            "sku",
            "supplier_id",
            "cost_cents",
            "histogram",
            "warehouses",
            "tags",
            "related_ids",
            "description",
        ] {
            assert!(
                !r.body.contains(&format!("\"{internal}\":")),
                "{internal} leaked: {}",
                r.body
            );
        }
    }
    for bad in ["999999", "0", "abc"] {
        let r = get_auth(&format!("{}/api/products/{bad}", gw.url), &token).await;
        r.assert_problem(404, "not_found", &mocks);
    }
    // Encoded traversal never reaches routing: the edge refuses non-canonical paths.
    for bad in ["1%2F..", "%2E%2E"] {
        let r = get_auth(&format!("{}/api/products/{bad}", gw.url), &token).await;
        r.assert_problem(400, "bad_request", &mocks);
    }
}

/// Rating and stock are optional: their failure gives 200, `null` fields and `bff-partial`.
#[tokio::test]
async fn product_optional_parts() {
    let (mocks, gw) = mobile_uncached().await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let url = format!("{}/api/products/3", gw.url);
    mocks
        .handle(Service::Reviews)
        .set_faults(vec![FaultRule::new(FaultKind::Error { status: 500 })]);
    mocks
        .handle(Service::Inventory)
        .set_faults(vec![FaultRule::new(FaultKind::MalformedJson)]);
    let r = get_auth(&url, &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut partial: Vec<&str> = r
        .header("bff-partial")
        .unwrap_or_default()
        .split(',')
        .collect();
    partial.sort_unstable();
    assert_eq!(partial, ["inventory", "rating"]);
    let p = r.json();
    assert!(p["rating"].is_null() && p["in_stock"].is_null());
    assert_eq!(p["id"], "3");
    assert_no_leak(&r.body, &mocks);
    // The required product failing fails the request.
    mocks
        .handle(Service::Catalog)
        .set_faults(vec![FaultRule::new(FaultKind::Error { status: 500 })]);
    let r = get_auth(&url, &token).await;
    r.assert_problem(502, "bad_gateway", &mocks);
    assert_eq!(r.json()["part"], "product");
}

/// An order needs `orders:read` and must belong to the caller: another user's order is indistinguishable
/// from an unknown one.
#[tokio::test]
async fn order_screen_scope_and_ownership() {
    let (mocks, gw) = mobile_uncached().await;
    let page = source(&mocks, Service::Orders, "/users/7/orders?limit=1").await;
    let order = &page["items"][0];
    let id = order["id"].as_str().unwrap();
    let url = format!("{}/api/orders/{id}", gw.url);

    let owner = token(&mocks, "7", AUD, &["orders:read"]).await;
    let r = get_auth(&url, &owner).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("bff-partial").is_none());
    let o = r.json();
    assert_eq!(keys(&o), ["id", "items", "placed_at", "status", "total"]);
    assert_eq!(o["id"], order["id"]);
    assert_eq!(o["total"], order["total"]);
    let lines = o["items"].as_array().unwrap();
    assert_eq!(lines.len(), order["items"].as_array().unwrap().len());
    for (line, source_line) in lines.iter().zip(order["items"].as_array().unwrap()) {
        assert_eq!(
            keys(line),
            ["name", "product_id", "quantity", "thumbnail_url"]
        );
        assert_eq!(line["product_id"], source_line["product_id"]);
        assert_eq!(line["quantity"], source_line["quantity"]);
        assert!(line["name"].is_string() && line["thumbnail_url"].is_string());
    }
    for internal in [
        "user_id",
        "card_last4",
        "processor_ref",
        "internal_notes",
        "shipping_address",
        "unit_price",
    ] {
        assert!(
            !r.body.contains(&format!("\"{internal}\":")),
            "{internal} leaked: {}",
            r.body
        );
    }
    assert_eq!(
        mocks.handle(Service::Catalog).route_count("GET /products"),
        1,
        "one batch call"
    );
    assert_eq!(
        mocks
            .handle(Service::Catalog)
            .route_count("GET /products/{id}"),
        0
    );

    let no_scope = token(&mocks, "7", AUD, &["profile:read"]).await;
    get_auth(&url, &no_scope)
        .await
        .assert_problem(403, "forbidden", &mocks);

    let stranger = token(&mocks, "8", AUD, &["orders:read"]).await;
    let theirs = get_auth(&url, &stranger).await;
    theirs.assert_problem(404, "not_found", &mocks);
    let unknown = get_auth(&format!("{}/api/orders/99999999", gw.url), &stranger).await;
    unknown.assert_problem(404, "not_found", &mocks);
    // Same problem either way, apart from the request id.
    let strip = |r: &Reply| {
        r.body
            .replace(r.json()["request_id"].as_str().unwrap_or_default(), "")
    };
    assert_eq!(
        strip(&theirs),
        strip(&unknown),
        "ownership must not be revealed"
    );
    get_auth(&format!("{}/api/orders/12ab", gw.url), &owner)
        .await
        .assert_problem(404, "not_found", &mocks);

    // The product batch is optional: names and thumbnails become null, the order still shows.
    mocks
        .handle(Service::Catalog)
        .set_faults(vec![FaultRule::new(FaultKind::Error { status: 500 })]);
    let r = get_auth(&url, &owner).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("bff-partial"), Some("products"));
    for line in r.json()["items"].as_array().unwrap() {
        assert!(line["name"].is_null() && line["thumbnail_url"].is_null());
        assert!(line["product_id"].is_string());
    }
    assert_no_leak(&r.body, &mocks);
}

/// Failing recommendations (an injected error, or a failing catalog batch behind them) give 200,
/// `recommendations: null` and `bff-partial: recommendations`; the failure's body never leaks.
#[tokio::test]
async fn home_recommendations_are_optional() {
    let (mocks, gw) = mobile_uncached().await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let url = format!("{}/api/home", gw.url);
    let full = get_auth(&url, &token).await;
    assert_eq!(full.status, 200, "{}", full.body);

    mocks
        .handle(Service::Recommendations)
        .set_faults(vec![FaultRule::new(FaultKind::Error { status: 500 })]);
    let r = get_auth(&url, &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("bff-partial"), Some("recommendations"));
    let home = r.json();
    assert!(home["recommendations"].is_null());
    assert_eq!(home["first_name"], full.json()["first_name"]);
    assert_eq!(home["orders"], full.json()["orders"]);
    assert_ne!(
        r.header("etag"),
        full.header("etag"),
        "a partial body has its own tag"
    );
    assert_no_leak(&r.body, &mocks);
    mocks.handle(Service::Recommendations).clear_faults();

    mocks
        .handle(Service::Catalog)
        .set_faults(vec![FaultRule::new(FaultKind::Reset)]);
    let r = get_auth(&url, &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("bff-partial"), Some("recommendations"));
    assert!(r.json()["recommendations"].is_null());
    mocks.handle(Service::Catalog).clear_faults();

    // A required part failing is a problem naming the part.
    mocks
        .handle(Service::Orders)
        .set_faults(vec![FaultRule::new(FaultKind::Error { status: 500 })]);
    let r = get_auth(&url, &token).await;
    r.assert_problem(502, "bad_gateway", &mocks);
    assert_eq!(r.json()["part"], "orders");
}

/// Only valid `bff-mobile` tokens are accepted.
#[tokio::test]
async fn auth_rejections() {
    let (mocks, gw) = mobile().await;
    let url = format!("{}/api/home", gw.url);
    get(&url, &[])
        .await
        .assert_problem(401, "unauthenticated", &mocks);
    let web = token(&mocks, "7", "bff-web", &[]).await;
    get_auth(&url, &web)
        .await
        .assert_problem(401, "unauthenticated", &mocks);
    get_auth(&url, "not-a-jwt")
        .await
        .assert_problem(401, "unauthenticated", &mocks);
    let ghost = token(&mocks, "99999", AUD, &[]).await;
    get_auth(&url, &ghost)
        .await
        .assert_problem(404, "not_found", &mocks);
}

/// Health, readiness and the OpenAPI document of the three screens are public.
#[tokio::test]
async fn health_and_docs() {
    let (_mocks, gw) = mobile().await;
    assert_eq!(get(&format!("{}/healthz", gw.url), &[]).await.status, 200);
    assert_eq!(get(&format!("{}/readyz", gw.url), &[]).await.status, 200);
    let doc = get(&format!("{}/openapi.json", gw.url), &[]).await;
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    for path in ["/api/home", "/api/products/{id}", "/api/orders/{id}"] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} documented");
    }
    assert_eq!(doc["info"]["title"], "bff-mobile");
}
