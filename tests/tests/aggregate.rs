//! Declarative aggregations from config: parallel fan-out merged nested or flattened, partial and failed parts.

mod common;

use bff_core::config::{AggregateConfig, AggregatePartConfig, MergeMode};
use common::*;
use mock_services::{FaultKind, FaultRule, Service};

fn part(name: &str, downstream: &str, path: &str, required: bool) -> AggregatePartConfig {
    AggregatePartConfig {
        name: name.into(),
        downstream: downstream.into(),
        path: path.into(),
        required,
        fallback: None,
        stale_max_age_s: 0,
    }
}

async fn gateway(mocks: &mock_services::MockStack) -> RunningGateway {
    let mut config = config_for(bff_web::defaults(), mocks);
    config.aggregates.push(AggregateConfig {
        path: "/api/agg/{id}".into(),
        merge: MergeMode::Nest,
        parts: vec![
            part("user", "users", "/users/{id}", true),
            part("stock", "inventory", "/inventory/{id}", false),
            part("product", "catalog", "/products/{id}", false),
        ],
        scopes: vec![],
    });
    config.aggregates.push(AggregateConfig {
        path: "/api/flat/{id}".into(),
        merge: MergeMode::Flatten,
        parts: vec![
            part("user", "users", "/users/{id}", true),
            part("stock", "inventory", "/inventory/{id}", false),
        ],
        scopes: vec!["agg:read".into()],
    });
    start(bff_web::app, uncached(config)).await
}

/// Nested merge puts each part under its name; a failed optional part is null and named in `bff-partial`.
#[tokio::test]
async fn nested_aggregate_with_partial() {
    let mocks = mocks().await;
    let gw = gateway(&mocks).await;
    let token = token(&mocks, "7", "bff-web", &[]).await;
    let r = get_auth(&format!("{}/api/agg/12", gw.url), &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["user"]["id"], "12");
    assert_eq!(v["stock"]["product_id"], "12");
    assert_eq!(v["product"]["id"], "12");
    assert!(r.header("bff-partial").is_none());
    mocks
        .handle(Service::Inventory)
        .set_faults(vec![FaultRule::new(FaultKind::MalformedJson)]);
    mocks
        .handle(Service::Catalog)
        .set_faults(vec![FaultRule::new(FaultKind::Error { status: 500 })]);
    let r = get_auth(&format!("{}/api/agg/12", gw.url), &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert!(v["stock"].is_null() && v["product"].is_null());
    assert_eq!(v["user"]["id"], "12");
    let mut partial: Vec<&str> = r.header("bff-partial").unwrap().split(',').collect();
    partial.sort_unstable();
    assert_eq!(partial, ["product", "stock"]);
    // A failed required part fails the whole aggregate.
    mocks
        .handle(Service::Users)
        .set_faults(vec![FaultRule::new(FaultKind::MalformedJson)]);
    get_auth(&format!("{}/api/agg/12", gw.url), &token)
        .await
        .assert_problem(502, "bad_gateway", &mocks);
    // An unknown required resource is a 404.
    mocks.handle(Service::Users).clear_faults();
    get_auth(&format!("{}/api/agg/99999", gw.url), &token)
        .await
        .assert_problem(404, "not_found", &mocks);
}

/// Flattened merge joins top-level fields; the aggregate's scopes are enforced.
#[tokio::test]
async fn flattened_aggregate_and_scopes() {
    let mocks = mocks().await;
    let gw = gateway(&mocks).await;
    let without = token(&mocks, "7", "bff-web", &[]).await;
    get_auth(&format!("{}/api/flat/12", gw.url), &without)
        .await
        .assert_problem(403, "forbidden", &mocks);
    let with = token(&mocks, "7", "bff-web", &["agg:read"]).await;
    let r = get_auth(&format!("{}/api/flat/12", gw.url), &with).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert!(v["first_name"].is_string(), "user fields at top level");
    assert_eq!(v["product_id"], "12", "stock fields at top level");
}
