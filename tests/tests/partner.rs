//! Black-box tests of bff-partner over real HTTP: each endpoint's content against the mock data set, scopes,
//! API-key authentication, order ownership, identity propagation, batching and id validation.

mod common;

use common::*;
use mock_services::data::{catalog, inventory, orders, users};
use mock_services::{FaultKind, FaultRule, MockStack, Service};
use serde_json::{Value, json};
use shared_schemas::views::partner::{OrderV1, ProductAvailabilityV1, ProductV1};

const ACME: &str = "dev-acme-key";
const GLOBEX: &str = "dev-globex-key";

/// GET `path` on the gateway with the API key `key`.
async fn get_key(gw: &RunningGateway, path: &str, key: &str) -> Reply {
    get(&format!("{}{path}", gw.url), &[("x-api-key", key)]).await
}

/// The product `id` as a partner with inventory access must see it, from the mock data set.
fn expected_product(id: &str, with_stock: bool) -> Value {
    let product = catalog::product_by_id(id).expect("product exists");
    let stock = with_stock.then(|| inventory::inventory_by_id(id).expect("stock exists"));
    serde_json::to_value(ProductV1::new(product, stock.as_ref())).unwrap()
}

/// The first product ids that are out of stock and in stock.
fn stock_samples() -> (String, String) {
    let out = (1..=5000)
        .find(|n| inventory::inventory(*n).available == 0)
        .expect("an out-of-stock product");
    let inside = (1..=5000)
        .find(|n| inventory::inventory(*n).available > 0)
        .expect("an in-stock product");
    (out.to_string(), inside.to_string())
}

/// Distinctive personal or internal values of the order `order_id` of user `user` in the mock data.
fn pii_of(order_id: &str, user: u32) -> Vec<String> {
    let order = orders::order_by_id(order_id).expect("order exists");
    let (first, last) = users::names(user);
    vec![
        format!("{first} {last}"),
        "@example.com".to_string(),
        users::address(user).line1,
        order.shipping_address.line1,
        order.payment.processor_ref,
        order.internal_notes,
    ]
}

/// Every object key anywhere in `value`, to check a body against the contract's allow-list.
fn all_keys(value: &Value, out: &mut std::collections::BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                out.insert(k.clone());
                all_keys(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| all_keys(v, out)),
        _ => {}
    }
}

fn assert_identity_headers(mocks: &MockStack, service: Service) {
    let handle = mocks.handle(service);
    assert!(handle.received_total() > 0, "{service:?} was called");
    assert_eq!(
        handle.last_header("x-api-key"),
        None,
        "the API key never reaches {service:?}"
    );
    assert_eq!(
        handle.last_header("x-bff-partner-id").as_deref(),
        Some("acme")
    );
    assert_eq!(
        handle.last_header("x-bff-partner-tier").as_deref(),
        Some("gold")
    );
    assert_eq!(
        handle.last_header("x-bff-client").as_deref(),
        Some("partner")
    );
    assert_eq!(handle.last_header("x-bff-user-id"), None);
}

/// A single product: all fields from the catalog, the large image, stock from the inventory (acme).
#[tokio::test]
async fn product_with_availability() {
    let (mocks, gw) = partner().await;
    let r = get_key(&gw, "/v1/products/42", ACME).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("bff-partial").is_none());
    let body = r.json();
    assert_eq!(body, expected_product("42", true));
    assert_eq!(body["image_url"], "https://img.example.com/p/42/large.jpg");
    assert!(body["availability"]["in_stock"].is_boolean());
    assert!(body["availability"]["available"].is_u64());
    let mut keys = std::collections::BTreeSet::new();
    all_keys(&body, &mut keys);
    let allowed = [
        "id",
        "sku",
        "name",
        "brand",
        "category",
        "description",
        "price",
        "image_url",
        "availability",
        "in_stock",
        "available",
        "amount_cents",
        "currency",
    ];
    assert!(
        keys.iter().all(|k| allowed.contains(&k.as_str())),
        "unexpected fields: {keys:?}"
    );
    assert_eq!(
        mocks
            .handle(Service::Catalog)
            .route_count("GET /products/{id}"),
        1
    );
    assert_eq!(
        mocks
            .handle(Service::Inventory)
            .route_count("GET /inventory/{product_id}"),
        1
    );
    assert_identity_headers(&mocks, Service::Catalog);
    assert_identity_headers(&mocks, Service::Inventory);
}

/// Without `inventory:read` (globex) availability is null and the inventory is never called.
#[tokio::test]
async fn product_without_inventory_scope() {
    let (mocks, gw) = partner().await;
    let r = get_key(&gw, "/v1/products/42", GLOBEX).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("bff-partial").is_none());
    assert_eq!(r.json(), expected_product("42", false));
    assert!(r.json()["availability"].is_null());
    assert_eq!(mocks.handle(Service::Inventory).received_total(), 0);
    let catalog = mocks.handle(Service::Catalog);
    assert_eq!(
        catalog.last_header("x-bff-partner-id").as_deref(),
        Some("globex")
    );
    assert_eq!(
        catalog.last_header("x-bff-partner-tier").as_deref(),
        Some("silver")
    );
}

/// Unknown products are 404; malformed ids are 404 without any downstream call.
#[tokio::test]
async fn product_not_found_and_malformed_ids() {
    let (mocks, gw) = partner().await;
    get_key(&gw, "/v1/products/999999", ACME)
        .await
        .assert_problem(404, "not_found", &mocks);
    mocks.handle(Service::Catalog).reset_received();
    mocks.handle(Service::Inventory).reset_received();
    let long = "1".repeat(33);
    for bad in [
        "abc",
        "1a",
        "-1",
        "%2E%2E",
        "..%2Fadmin",
        "1%2F2",
        long.as_str(),
    ] {
        for path in [
            format!("/v1/products/{bad}"),
            format!("/v1/products/{bad}/availability"),
            format!("/v1/orders/{bad}"),
        ] {
            let r = get_key(&gw, &path, ACME).await;
            if bad.contains('%') {
                // Refused at the edge as non-canonical (400), or normalised by the client's URL parser into
                // another path that does not exist (404): never routed with the id.
                let (status, code) = if r.status == 400 {
                    (400, "bad_request")
                } else {
                    (404, "not_found")
                };
                r.assert_problem(status, code, &mocks);
            } else {
                r.assert_problem(404, "not_found", &mocks);
            }
        }
    }
    for service in [Service::Catalog, Service::Inventory, Service::Orders] {
        assert_eq!(
            mocks.handle(service).received_total(),
            0,
            "{service:?} called for a malformed id"
        );
    }
}

/// The inventory failing on a single product gives 200, availability null and `bff-partial: availability`.
#[tokio::test]
async fn product_with_inventory_down_is_partial() {
    let (mocks, gw) = partner_uncached().await;
    mocks
        .handle(Service::Inventory)
        .set_faults(vec![FaultRule::new(FaultKind::Error { status: 500 })]);
    let r = get_key(&gw, "/v1/products/42", ACME).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("bff-partial"), Some("availability"));
    assert_eq!(r.json(), expected_product("42", false));
    // The catalog failing is a required failure.
    mocks
        .handle(Service::Catalog)
        .set_faults(vec![FaultRule::new(FaultKind::Error { status: 500 })]);
    get_key(&gw, "/v1/products/42", ACME)
        .await
        .assert_problem(502, "bad_gateway", &mocks);
}

/// The batch: deduplicated request order, missing ids, ONE catalog and ONE inventory batch call.
#[tokio::test]
async fn product_batch_with_availability() {
    let (mocks, gw) = partner().await;
    let r = get_key(&gw, "/v1/products?ids=3,777777,1,3,10", ACME).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("bff-partial").is_none());
    let body = r.json();
    assert_eq!(
        body,
        json!({
            "items": [expected_product("3", true), expected_product("1", true), expected_product("10", true)],
            "missing": ["777777"],
        })
    );
    let catalog = mocks.handle(Service::Catalog);
    assert_eq!(catalog.route_count("GET /products"), 1);
    assert_eq!(catalog.route_count("GET /products/{id}"), 0);
    assert_eq!(
        catalog.last_uri().as_deref(),
        Some("/products?ids=3,777777,1,10"),
        "deduplicated"
    );
    let inventory = mocks.handle(Service::Inventory);
    assert_eq!(inventory.route_count("GET /inventory"), 1);
    assert_eq!(inventory.route_count("GET /inventory/{product_id}"), 0);
    assert_identity_headers(&mocks, Service::Catalog);
    assert_identity_headers(&mocks, Service::Inventory);
}

/// Globex gets the batch without availability and without any inventory call.
#[tokio::test]
async fn product_batch_without_inventory_scope() {
    let (mocks, gw) = partner().await;
    let r = get_key(&gw, "/v1/products?ids=5,6", GLOBEX).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"items": [expected_product("5", false), expected_product("6", false)], "missing": []})
    );
    assert_eq!(
        mocks.handle(Service::Catalog).route_count("GET /products"),
        1
    );
    assert_eq!(mocks.handle(Service::Inventory).received_total(), 0);
}

/// The id list is bounded (50) and validated; every refusal is a 400 problem without downstream calls.
#[tokio::test]
async fn product_batch_validation() {
    let (mocks, gw) = partner().await;
    let fifty: Vec<String> = (1..=50).map(|n| n.to_string()).collect();
    let r = get_key(&gw, &format!("/v1/products?ids={}", fifty.join(",")), ACME).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["items"].as_array().map(Vec::len), Some(50));
    mocks.handle(Service::Catalog).reset_received();
    mocks.handle(Service::Inventory).reset_received();
    let fifty_one: Vec<String> = (1..=51).map(|n| n.to_string()).collect();
    let too_many = format!("/v1/products?ids={}", fifty_one.join(","));
    let hundred = format!("/v1/products?ids={}", vec!["1"; 100].join(","));
    for path in [
        too_many.as_str(),
        hundred.as_str(),
        "/v1/products",
        "/v1/products?ids=",
        "/v1/products?ids=,",
        "/v1/products?ids=1,,2",
        "/v1/products?ids=1,abc",
        "/v1/products?ids=1%2F2",
        "/v1/products?ids=1&ids=2",
    ] {
        get_key(&gw, path, ACME)
            .await
            .assert_problem(400, "bad_request", &mocks);
    }
    assert_eq!(mocks.handle(Service::Catalog).received_total(), 0);
    assert_eq!(mocks.handle(Service::Inventory).received_total(), 0);
}

/// Availability: out-of-stock products carry a restock date, unknown products are 404, globex is 403.
#[tokio::test]
async fn availability_endpoint() {
    let (mocks, gw) = partner().await;
    let (out, inside) = stock_samples();
    for id in [&out, &inside] {
        let r = get_key(&gw, &format!("/v1/products/{id}/availability"), ACME).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let expected = ProductAvailabilityV1::from(inventory::inventory_by_id(id).unwrap());
        assert_eq!(r.json(), serde_json::to_value(&expected).unwrap());
    }
    let out_body = get_key(&gw, &format!("/v1/products/{out}/availability"), ACME)
        .await
        .json();
    assert_eq!(out_body["in_stock"], false);
    assert_eq!(out_body["available"], 0);
    assert!(out_body["restock_eta"].is_string());
    let in_body = get_key(&gw, &format!("/v1/products/{inside}/availability"), ACME)
        .await
        .json();
    assert_eq!(in_body["in_stock"], true);
    assert!(!in_body.to_string().contains("warehouse"));
    assert_identity_headers(&mocks, Service::Inventory);
    get_key(&gw, "/v1/products/999999/availability", ACME)
        .await
        .assert_problem(404, "not_found", &mocks);
    let before = mocks.handle(Service::Inventory).received_total();
    get_key(&gw, "/v1/products/1/availability", GLOBEX)
        .await
        .assert_problem(403, "forbidden", &mocks);
    assert_eq!(
        mocks.handle(Service::Inventory).received_total(),
        before,
        "no call without the scope"
    );
}

/// Acme reads its own order (701: user 7's first order), enriched with ONE catalog batch, without PII.
#[tokio::test]
async fn own_order_is_shaped_without_pii() {
    let (mocks, gw) = partner().await;
    let order = orders::order_by_id("701").expect("order 701");
    assert_eq!(order.partner_id.as_deref(), Some("acme"));
    let r = get_key(&gw, "/v1/orders/701", ACME).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("bff-partial").is_none());
    let products = order
        .items
        .iter()
        .filter_map(|i| catalog::product_by_id(&i.product_id))
        .map(|p| (p.id.clone(), p))
        .collect();
    let expected = OrderV1::new(order.clone(), Some(&products));
    assert_eq!(r.json(), serde_json::to_value(&expected).unwrap());
    let body = r.json();
    assert_eq!(body["id"], "701");
    for line in body["items"].as_array().unwrap() {
        assert!(
            line["sku"].is_string() && line["name"].is_string(),
            "{line}"
        );
    }
    for needle in pii_of("701", 7) {
        assert!(!r.body.contains(&needle), "`{needle}` leaked: {}", r.body);
    }
    let mut keys = std::collections::BTreeSet::new();
    all_keys(&body, &mut keys);
    let allowed = [
        "id",
        "status",
        "placed_at",
        "total",
        "items",
        "product_id",
        "sku",
        "name",
        "quantity",
        "unit_price",
        "amount_cents",
        "currency",
    ];
    assert!(
        keys.iter().all(|k| allowed.contains(&k.as_str())),
        "unexpected fields: {keys:?}"
    );
    assert_eq!(
        mocks
            .handle(Service::Orders)
            .route_count("GET /orders/{id}"),
        1
    );
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
    assert_identity_headers(&mocks, Service::Orders);
    assert_identity_headers(&mocks, Service::Catalog);
}

/// Orders of another partner (702: globex), of no partner (703) and non-existent orders all look the same: 404.
#[tokio::test]
async fn foreign_orders_are_not_found() {
    let (mocks, gw) = partner().await;
    assert_eq!(
        orders::order_by_id("702").unwrap().partner_id.as_deref(),
        Some("globex")
    );
    assert_eq!(orders::order_by_id("703").unwrap().partner_id, None);
    let mut bodies = Vec::new();
    for id in ["702", "703", "1002", "99999999"] {
        let r = get_key(&gw, &format!("/v1/orders/{id}"), ACME).await;
        r.assert_problem(404, "not_found", &mocks);
        let mut json = r.json();
        json.as_object_mut().unwrap().remove("request_id");
        bodies.push(json);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "404 bodies differ: {bodies:?}"
    );
    // Nothing about a foreign order is fetched beyond the order itself.
    assert_eq!(mocks.handle(Service::Catalog).received_total(), 0);
}

/// Globex has only `catalog:read`: inventory and orders are 403 `forbidden`, even for its own order. The
/// route's scopes are checked before anything of the request is read: a malformed id or fieldset is still a
/// 403 (no probing past the scope check), and so is a write without a body.
#[tokio::test]
async fn missing_scopes_are_forbidden() {
    let (mocks, gw) = partner().await;
    for path in [
        "/v1/orders/702",
        "/v1/orders/701",
        "/v1/products/1/availability",
        "/v1/orders/not-an-id",
        "/v1/products/1/availability?fields=secret",
    ] {
        get_key(&gw, path, GLOBEX)
            .await
            .assert_problem(403, "forbidden", &mocks);
    }
    let write = client()
        .post(format!("{}/v1/orders", gw.url))
        .header("x-api-key", GLOBEX)
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 403);
    assert_eq!(mocks.handle(Service::Orders).received_total(), 0);
    assert_eq!(mocks.handle(Service::Inventory).received_total(), 0);
}

/// No key, an unknown key, two keys or a bearer token: 401 problem+json with an `ApiKey` challenge, nothing
/// called downstream.
#[tokio::test]
async fn bad_credentials_are_unauthenticated() {
    let (mocks, gw) = partner().await;
    for path in [
        "/v1/products/1",
        "/v1/products?ids=1",
        "/v1/orders/701",
        "/v1/nope",
    ] {
        let url = format!("{}{path}", gw.url);
        let r = get(&url, &[]).await;
        r.assert_problem(401, "unauthenticated", &mocks);
        // The challenge names the credential this gateway takes: an API key header, not a bearer token.
        assert_eq!(
            r.header("www-authenticate"),
            Some("ApiKey header=\"x-api-key\""),
            "{path}"
        );
        get(&url, &[("x-api-key", "dev-acme-key-wrong")])
            .await
            .assert_problem(401, "unauthenticated", &mocks);
        get(&url, &[("x-api-key", "")])
            .await
            .assert_problem(401, "unauthenticated", &mocks);
        get(&url, &[("x-api-key", ACME), ("x-api-key", GLOBEX)])
            .await
            .assert_problem(401, "unauthenticated", &mocks);
        get(&url, &[("authorization", "Bearer dev-acme-key")])
            .await
            .assert_problem(401, "unauthenticated", &mocks);
        // A client cannot authenticate by claiming a partner identity header.
        get(
            &url,
            &[
                ("x-bff-partner-id", "acme"),
                ("x-bff-scopes", "orders:read"),
            ],
        )
        .await
        .assert_problem(401, "unauthenticated", &mocks);
    }
    for handle in mocks.handles() {
        assert_eq!(
            handle.received_total(),
            0,
            "{:?} called without credentials",
            handle.service()
        );
    }
}

/// Client-sent identity headers are discarded: the downstream sees only the verified partner.
#[tokio::test]
async fn spoofed_identity_headers_do_not_reach_downstreams() {
    let (mocks, gw) = partner().await;
    let spoof = [
        ("x-api-key", ACME),
        ("x-bff-partner-id", "globex"),
        ("x-bff-partner-tier", "platinum"),
        ("x-bff-user-id", "1"),
        ("x-bff-scopes", "admin"),
    ];
    let r = get(&format!("{}/v1/products/42", gw.url), &spoof).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_identity_headers(&mocks, Service::Catalog);
    let catalog = mocks.handle(Service::Catalog);
    assert_eq!(
        catalog.last_header("x-bff-scopes").as_deref(),
        Some("catalog:read inventory:read orders:read orders:write")
    );
    // Acme still cannot read a globex order by claiming to be globex.
    get(&format!("{}/v1/orders/702", gw.url), &spoof)
        .await
        .assert_problem(404, "not_found", &mocks);
    assert_eq!(
        mocks
            .handle(Service::Orders)
            .last_header("x-bff-partner-id")
            .as_deref(),
        Some("acme")
    );
}

/// The catalog failing while enriching an order gives 200 with null SKUs/names and `bff-partial: products`;
/// the orders service failing is a 502.
#[tokio::test]
async fn order_enrichment_is_optional() {
    let (mocks, gw) = partner().await;
    mocks
        .handle(Service::Catalog)
        .set_faults(vec![FaultRule::new(FaultKind::Reset)]);
    let r = get_key(&gw, "/v1/orders/701", ACME).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("bff-partial"), Some("products"));
    let order = orders::order_by_id("701").unwrap();
    assert_eq!(
        r.json(),
        serde_json::to_value(OrderV1::new(order, None)).unwrap()
    );
    mocks
        .handle(Service::Orders)
        .set_faults(vec![FaultRule::new(FaultKind::Error { status: 500 })]);
    get_key(&gw, "/v1/orders/701", ACME)
        .await
        .assert_problem(502, "bad_gateway", &mocks);
}

/// Health and docs are public; the OpenAPI document lists the v1 routes and the API-key scheme.
#[tokio::test]
async fn health_and_openapi_are_public() {
    let (mocks, gw) = partner().await;
    assert_eq!(get(&format!("{}/healthz", gw.url), &[]).await.status, 200);
    assert_eq!(get(&format!("{}/readyz", gw.url), &[]).await.status, 200);
    let r = get(&format!("{}/openapi.json", gw.url), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let doc = r.json();
    for path in [
        "/v1/products",
        "/v1/products/{id}",
        "/v1/products/{id}/availability",
        "/v1/orders/{id}",
    ] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} documented");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["name"],
        "x-api-key"
    );
    assert!(!r.body.contains("user_id"));
    assert_no_leak(&r.body, &mocks);
}
