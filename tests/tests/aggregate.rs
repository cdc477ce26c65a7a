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
        ..Default::default()
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

/// A screen from config that reads the caller and earlier parts: the profile and orders of the verified user
/// (never a user id from the URL), the products of those orders fetched in one batch call (`for_each`), and
/// the stock of the first order's first product (`{orders.items.0.items.0.product_id}`).
fn my_overview(path: &str, orders_required: bool) -> AggregateConfig {
    let mut orders =
        AggregatePartConfig::new("orders", "orders", "/users/{caller.user_id}/orders?limit=5");
    orders.required = orders_required;
    AggregateConfig {
        path: path.into(),
        merge: MergeMode::Nest,
        parts: vec![
            AggregatePartConfig::new("profile", "users", "/users/{caller.user_id}"),
            orders,
            AggregatePartConfig::new("products", "catalog", "/products?ids={each}")
                .for_each("orders.items.items.product_id")
                .optional(),
            AggregatePartConfig::new(
                "first_stock",
                "inventory",
                "/inventory/{orders.items.0.items.0.product_id}",
            )
            .optional(),
            AggregatePartConfig::new("nothing", "catalog", "/products?ids={each}")
                .for_each("orders.no_such_field")
                .optional(),
        ],
        scopes: vec![],
    }
}

#[tokio::test]
async fn caller_and_chained_parts() {
    let mocks = mocks().await;
    let mut config = uncached(config_for(bff_web::defaults(), &mocks));
    config
        .aggregates
        .push(my_overview("/api/me/overview", true));
    config
        .aggregates
        .push(my_overview("/api/me/lenient", false));
    let gw = start(bff_web::app, config).await;
    let catalog = mocks.handle(Service::Catalog);
    for user in ["7", "8"] {
        let token = token(&mocks, user, "bff-web", &[]).await;
        let before = catalog.received_total();
        let r = get_auth(&format!("{}/api/me/overview", gw.url), &token).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        // The caller's own data, from the verified token.
        assert_eq!(v["profile"]["id"], user);
        let orders = v["orders"]["items"].as_array().unwrap();
        assert!(!orders.is_empty());
        assert!(orders.iter().all(|o| o["user_id"] == user));
        let mut wanted: Vec<&str> = orders
            .iter()
            .flat_map(|o| o["items"].as_array().unwrap())
            .map(|line| line["product_id"].as_str().unwrap())
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut got: Vec<&str> = v["products"]["items"]
            .as_array()
            .unwrap_or_else(|| panic!("products: {}", v["products"]))
            .iter()
            .map(|p| p["id"].as_str().unwrap())
            .collect();
        got.sort_unstable();
        assert_eq!(got, wanted, "every product of the orders, each once");
        // One batch call for all of them, and none for the empty fan-out (which is `[]`).
        assert_eq!(catalog.received_total() - before, 1);
        assert!(
            catalog.last_uri().unwrap().starts_with("/products?ids="),
            "{:?}",
            catalog.last_uri()
        );
        assert_eq!(v["nothing"], serde_json::json!([]));
        assert_eq!(
            v["first_stock"]["product_id"],
            orders[0]["items"][0]["product_id"]
        );
        assert!(r.header("bff-partial").is_none());
    }
    // A failed part fails the parts that read it: optional ones are partial, with the usual header.
    mocks
        .handle(Service::Orders)
        .set_faults(vec![FaultRule::new(FaultKind::Error { status: 500 })]);
    let token = token(&mocks, "7", "bff-web", &[]).await;
    let r = get_auth(&format!("{}/api/me/lenient", gw.url), &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["profile"]["id"], "7");
    assert!(v["orders"].is_null() && v["products"].is_null() && v["first_stock"].is_null());
    let partial = r.header("bff-partial").unwrap();
    for part in ["orders", "products", "first_stock", "nothing"] {
        assert!(partial.contains(part), "{partial}");
    }
    // ... and a required one fails the request, naming nothing internal.
    get_auth(&format!("{}/api/me/overview", gw.url), &token)
        .await
        .assert_problem(502, "bad_gateway", &mocks);
}

/// An aggregation that uses the caller refuses anonymous callers even where authentication is off, and a
/// partner where it needs a user.
#[tokio::test]
async fn caller_parts_refuse_anonymous_and_wrong_kind() {
    let mocks = mocks().await;
    let mut config = uncached(config_for(bff_web::defaults(), &mocks));
    config.auth.mode = bff_core::config::AuthMode::None;
    config.rate_limit.policies.clear();
    config
        .aggregates
        .push(my_overview("/api/me/overview", true));
    let gw = start(bff_web::app, config).await;
    get(&format!("{}/api/me/overview", gw.url), &[])
        .await
        .assert_problem(401, "unauthenticated", &mocks);
    let mut partner = config_for(bff_partner::defaults(), &mocks);
    partner.aggregates.push(AggregateConfig {
        path: "/api/me/overview".into(),
        merge: MergeMode::Nest,
        parts: vec![AggregatePartConfig::new(
            "orders",
            "orders",
            "/users/{caller.user_id}/orders",
        )],
        scopes: vec![],
    });
    let gw = start(bff_partner::app, partner).await;
    let r = get(
        &format!("{}/api/me/overview", gw.url),
        &[("x-api-key", "dev-acme-key")],
    )
    .await;
    r.assert_problem(403, "forbidden", &mocks);
}

/// Chaining mistakes are configuration errors naming the key, found before serving.
#[test]
fn chaining_mistakes_are_refused_by_check() {
    let base = || {
        let mut c = bff_web::defaults();
        c.aggregates.push(my_overview("/api/me/overview", true));
        c
    };
    base().validate().expect("the example is valid");
    type Breaker = Box<dyn Fn(&mut AggregateConfig)>;
    let cases: Vec<(&str, Breaker)> = vec![
        (
            "aggregates[0].parts[0].path",
            Box::new(|a| a.parts[0].path = "/users/{orders.id}".into()),
        ),
        (
            "aggregates[0].parts[2].for_each",
            Box::new(|a| a.parts[2].for_each = Some("profile".into())),
        ),
        (
            "aggregates[0].parts[2].path",
            Box::new(|a| a.parts[2].for_each = None),
        ),
        (
            "aggregates[0].parts[1].path",
            Box::new(|a| a.parts[1].path = "/x/{caller.email}".into()),
        ),
        (
            "aggregates[0].parts[3].required",
            Box::new(|a| {
                a.parts[1].required = false;
                a.parts[3].path = "/inventory/{orders.id}".into();
                a.parts[3].required = true;
            }),
        ),
        (
            "aggregates[0].parts[1].name",
            Box::new(|a| a.parts[1].name = "caller".into()),
        ),
        (
            "aggregates[0].parts[2].for_each_max",
            Box::new(|a| a.parts[2].for_each_max = 0),
        ),
    ];
    for (key, break_it) in cases {
        let mut c = base();
        break_it(&mut c.aggregates[0]);
        match c.validate() {
            Err(bff_core::config::ConfigError::Invalid { key: k, reason }) => {
                assert_eq!(k, key, "{reason}")
            }
            other => panic!("{key}: {other:?}"),
        }
    }
}
