//! Declarative REST→gRPC routes over real HTTP/2: a `[[routes]]` entry naming a gRPC method of the mocks'
//! tonic servers (through the checked-in descriptor set) answers the proto3 JSON of the same data as the REST
//! endpoint, shaped by `fields`; path and query parameters fill request fields; gRPC statuses map to problems
//! without leaking; a route naming an unknown method or field is refused at config load, naming the key.

mod common;

use bff_core::BffConfig;
use bff_core::config::{ConfigError, Protocol, RouteConfig};
use common::*;
use mock_services::data::inventory;
use mock_services::{MockStack, Service};
use shared_schemas::downstream::Inventory;

const GET_STOCK: &str = "shop.inventory.Inventory/GetStock";
const LIST_RECOMMENDATIONS: &str = "shop.recommendations.Recommendations/ListRecommendations";

/// A GET route at `path` calling `method` of `downstream`.
fn grpc_route(path: &str, downstream: &str, method: &str) -> RouteConfig {
    RouteConfig {
        path: path.into(),
        downstream: downstream.into(),
        downstream_path: String::new(),
        grpc_method: Some(method.into()),
        query_allow: vec![],
        header_allow: vec![],
        fields: vec![],
        scopes: vec![],
    }
}

/// Points the downstream of `service` at the mock's gRPC port with the domain's descriptor set.
fn use_grpc(config: &mut BffConfig, mocks: &MockStack, service: Service) {
    let d = config
        .downstreams
        .get_mut(service.name())
        .expect("downstream configured");
    d.protocol = Protocol::Grpc;
    d.url = mocks.handle(service).grpc_url().expect("serves gRPC");
    d.descriptor_set = Some(shared_schemas::grpc::DESCRIPTOR_SET.into());
}

/// bff-web with inventory and recommendations over gRPC and three declarative gRPC routes.
fn web_config(mocks: &MockStack) -> BffConfig {
    let mut config = config_for(bff_web::defaults(), mocks);
    use_grpc(&mut config, mocks, Service::Inventory);
    use_grpc(&mut config, mocks, Service::Recommendations);
    config.routes.push(grpc_route(
        "/api/stock/{product_id}",
        "inventory",
        GET_STOCK,
    ));
    let mut shaped = grpc_route("/api/stock/{product_id}/brief", "inventory", GET_STOCK);
    shaped.fields = vec!["available".into(), "warehouses.warehouse_id".into()];
    config.routes.push(shaped);
    let mut recs = grpc_route(
        "/api/recs/{user_id}",
        "recommendations",
        LIST_RECOMMENDATIONS,
    );
    recs.query_allow = vec!["limit".into()];
    recs.fields = vec!["items.product_id".into()];
    config.routes.push(recs);
    config
}

/// The stock route answers the proto3 JSON of the same record as the inventory's REST endpoint (in stock and
/// out of stock, with its restock date), as one gRPC call over HTTP/2; `fields` shapes it like any route.
#[tokio::test]
async fn stock_route_answers_the_rest_data_as_proto3_json() {
    let mocks = mocks().await;
    let gw = start(bff_web::app, web_config(&mocks)).await;
    let token = token(&mocks, "7", "bff-web", &[]).await;
    let inventory_mock = mocks.handle(Service::Inventory);
    let out_of_stock = (1..=5000)
        .find(|n| inventory::inventory(*n).available == 0)
        .expect("one product out of stock");
    let in_stock = (1..=5000)
        .find(|n| inventory::inventory(*n).available > 0)
        .expect("one product in stock");
    for product in [in_stock, out_of_stock] {
        let rest = get(
            &format!("{}/inventory/{product}", inventory_mock.url()),
            &[],
        )
        .await;
        assert_eq!(rest.status, 200, "{}", rest.body);
        inventory_mock.reset_received();
        let reply = get_auth(&format!("{}/api/stock/{product}", gw.url), &token).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let over_grpc: Inventory = serde_json::from_str(&reply.body).expect("a stock record");
        let over_rest: Inventory = serde_json::from_str(&rest.body).expect("a stock record");
        assert_eq!(over_grpc, over_rest, "product {product}");
        assert_eq!(reply.json()["product_id"], product.to_string());
        assert_eq!(
            inventory_mock.route_count("POST /shop.inventory.Inventory/GetStock"),
            1
        );
        let last = inventory_mock.received().last.expect("a call");
        assert_eq!(last.version, "HTTP/2.0");
        assert_eq!(
            inventory_mock.last_header("content-type").as_deref(),
            Some("application/grpc")
        );
        assert_eq!(
            inventory_mock.last_header("x-bff-user-id").as_deref(),
            Some("7")
        );
    }
    // A field at its default value is rendered (`available: 0`), not left out.
    let zero = get_auth(&format!("{}/api/stock/{out_of_stock}", gw.url), &token).await;
    assert_eq!(zero.json()["available"], 0);

    let shaped = get_auth(&format!("{}/api/stock/{in_stock}/brief", gw.url), &token).await;
    assert_eq!(shaped.status, 200, "{}", shaped.body);
    let record = inventory::inventory(in_stock);
    let warehouses: Vec<serde_json::Value> = record
        .warehouses
        .iter()
        .map(|w| serde_json::json!({"warehouse_id": w.warehouse_id}))
        .collect();
    assert_eq!(
        shaped.json(),
        serde_json::json!({"available": record.available, "warehouses": warehouses})
    );
    gw.shutdown().await;
    mocks.shutdown().await;
}

/// An allow-listed query parameter fills its request field (`limit`); other parameters are dropped; a value
/// that is not of the field's type is a 400 problem and calls nothing.
#[tokio::test]
async fn query_parameter_fills_a_field() {
    let mocks = mocks().await;
    let gw = start(bff_web::app, web_config(&mocks)).await;
    let token = token(&mocks, "7", "bff-web", &[]).await;
    let recs_mock = mocks.handle(Service::Recommendations);
    let rest = get(
        &format!("{}/users/7/recommendations?limit=3", recs_mock.url()),
        &[],
    )
    .await;
    assert_eq!(rest.status, 200, "{}", rest.body);
    let expected: Vec<serde_json::Value> = rest.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| serde_json::json!({"product_id": i["product_id"]}))
        .collect();
    assert_eq!(expected.len(), 3);
    let reply = get_auth(&format!("{}/api/recs/7?limit=3&debug=1", gw.url), &token).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json(), serde_json::json!({"items": expected}));
    let default = get_auth(&format!("{}/api/recs/7", gw.url), &token).await;
    assert_eq!(default.status, 200, "{}", default.body);
    assert_eq!(
        default.json()["items"].as_array().map(Vec::len),
        Some(10),
        "no limit: the field's default (0 = 10)"
    );
    recs_mock.reset_received();
    let bad = get_auth(&format!("{}/api/recs/7?limit=many", gw.url), &token).await;
    bad.assert_problem(400, "bad_request", &mocks);
    assert!(bad.body.contains("limit"), "{}", bad.body);
    assert_eq!(
        recs_mock.route_count("POST /shop.recommendations.Recommendations/ListRecommendations"),
        0
    );
    gw.shutdown().await;
    mocks.shutdown().await;
}

/// gRPC `NOT_FOUND` is a 404 problem, `UNAVAILABLE` a 503, a malformed message a 502; none leaks the status
/// message, host or port.
#[tokio::test]
async fn grpc_status_maps_to_problem() {
    let mocks = mocks().await;
    let gw = start(bff_web::app, web_config(&mocks)).await;
    let token = token(&mocks, "7", "bff-web", &[]).await;
    let missing = get_auth(&format!("{}/api/stock/999999", gw.url), &token).await;
    missing.assert_problem(404, "not_found", &mocks);
    assert!(
        !missing.body.contains("no such product"),
        "{}",
        missing.body
    );
    let inventory_mock = mocks.handle(Service::Inventory);
    inventory_mock.set_faults(vec![
        mock_services::FaultRule::new(mock_services::FaultKind::Error { status: 503 })
            .with_prefix("/shop."),
    ]);
    let down = get_auth(&format!("{}/api/stock/1", gw.url), &token).await;
    down.assert_problem(503, "downstream_unavailable", &mocks);
    // A message that is not a `Stock` (malformed protobuf) is a bad answer.
    inventory_mock.set_faults(vec![
        mock_services::FaultRule::new(mock_services::FaultKind::MalformedJson)
            .with_prefix("/shop."),
    ]);
    let malformed = get_auth(&format!("{}/api/stock/1", gw.url), &token).await;
    malformed.assert_problem(502, "bad_gateway", &mocks);
    inventory_mock.clear_faults();
    for text in [&missing.body, &down.body, &malformed.body] {
        for needle in ["grpc", "tonic", "injected"] {
            assert!(
                !text.to_lowercase().contains(needle),
                "leaks `{needle}`: {text}"
            );
        }
    }
    gw.shutdown().await;
    mocks.shutdown().await;
}

/// The gRPC routes are operations of the OpenAPI document, with their path and query parameters.
#[tokio::test]
async fn grpc_routes_are_documented() {
    let mocks = mocks().await;
    let gw = start(bff_web::app, web_config(&mocks)).await;
    let doc = get(&format!("{}/openapi.json", gw.url), &[]).await.json();
    let recs = &doc["paths"]["/api/recs/{user_id}"]["get"];
    let params: Vec<(&str, &str)> = recs["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["in"].as_str().unwrap()))
        .collect();
    assert_eq!(params, [("user_id", "path"), ("limit", "query")]);
    assert!(doc["paths"]["/api/stock/{product_id}"]["get"].is_object());
    gw.shutdown().await;
    mocks.shutdown().await;
}

/// Config mistakes of a gRPC route are refused at load (TOML file + defaults, as `check` does), naming the
/// key: an unknown method or service, a path parameter or query parameter that is no request field, a field
/// that cannot be filled from text, a `downstream_path` beside the method, an HTTP downstream, a missing or
/// unreadable descriptor set.
#[test]
fn bad_grpc_routes_are_refused_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("bff-grpc-routes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let descriptor = shared_schemas::grpc::DESCRIPTOR_SET;
    let downstream = format!(
        "[downstreams.inventory]\nprotocol = \"grpc\"\nurl = \"http://127.0.0.1:7105\"\ndescriptor_set = \"{descriptor}\"\n"
    );
    let route = |extra: &str| {
        format!(
            "{downstream}\n[[routes]]\npath = \"/api/stock/{{product_id}}\"\ndownstream = \"inventory\"\n{extra}\n"
        )
    };
    let load = |name: &str, text: &str| {
        let file = dir.join(format!("{name}.toml"));
        std::fs::write(&file, text).expect("write");
        BffConfig::load(&bff_web::defaults(), Some(&file))
    };
    load("ok", &route(&format!("grpc_method = \"{GET_STOCK}\""))).expect("a valid gRPC route");
    let cases: Vec<(&str, String)> = vec![
        (
            "routes[0].grpc_method",
            route("grpc_method = \"shop.inventory.Inventory/GetStocks\""),
        ),
        (
            "routes[0].grpc_method",
            route("grpc_method = \"shop.nope.Inventory/GetStock\""),
        ),
        (
            "routes[0].grpc_method",
            route("grpc_method = \"shop.orders.Orders/WatchOrder\""),
        ),
        (
            "routes[0].path",
            route(&format!("grpc_method = \"{GET_STOCK}\"")).replace("{product_id}", "{id}"),
        ),
        (
            "routes[0].query_allow[0]",
            route(&format!(
                "grpc_method = \"{GET_STOCK}\"\nquery_allow = [\"warehouse\"]"
            )),
        ),
        (
            "routes[0].path",
            route("grpc_method = \"shop.inventory.Inventory/BatchGetStock\"")
                .replace("{product_id}", "{product_ids}"),
        ),
        (
            "routes[0].downstream_path",
            route(&format!(
                "grpc_method = \"{GET_STOCK}\"\ndownstream_path = \"/inventory/{{product_id}}\""
            )),
        ),
        (
            "routes[0].grpc_method",
            route(&format!("grpc_method = \"{GET_STOCK}\""))
                .replace(&format!("descriptor_set = \"{descriptor}\"\n"), ""),
        ),
        (
            "downstreams.inventory.descriptor_set",
            route(&format!("grpc_method = \"{GET_STOCK}\""))
                .replace(descriptor, "/nonexistent/descriptor.bin"),
        ),
        (
            "downstreams.inventory.descriptor_set",
            route(&format!("grpc_method = \"{GET_STOCK}\"")).replace("protocol = \"grpc\"\n", ""),
        ),
    ];
    for (i, (key, text)) in cases.iter().enumerate() {
        match load(&format!("case{i}"), text) {
            Err(ConfigError::Invalid { key: k, reason }) => assert_eq!(&k, key, "{reason}\n{text}"),
            other => panic!("{key}: {other:?}\n{text}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
