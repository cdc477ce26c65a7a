//! Every gateway's `/openapi.json` is a valid OpenAPI 3.1 document, checked by a real validator
//! (`openapi-spec-validator`, PyPI) and by the rules a generated client depends on: every `$ref` resolves,
//! every security requirement names a declared scheme, every path template parameter is declared as a path
//! parameter (and nothing else is), and every operation documents the edge's error responses. Config routes
//! and aggregations appear in the document too.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use bff_core::config::{AggregateConfig, AggregatePartConfig, MergeMode, RouteConfig};
use common::*;
use serde_json::Value;

/// The statuses the edge can answer on any operation; 401 and 403 only where a credential is needed.
const EDGE: &[&str] = &["400", "401", "403", "429", "502", "503", "504"];

/// Every place in `doc` that breaks one of the rules of the module documentation.
fn problems(doc: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut refs = Vec::new();
    collect_refs(doc, &mut refs);
    for r in refs {
        let pointer = r.strip_prefix('#').unwrap_or("not local");
        if doc.pointer(pointer).is_none() {
            found.push(format!("dangling $ref {r}"));
        }
    }
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .map(|s| s.keys().cloned().collect::<BTreeSet<_>>())
        .unwrap_or_default();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let template: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_owned)
            .collect();
        for (method, op) in item.as_object().expect("path item") {
            let at = format!("{} {path}", method.to_uppercase());
            let declared: BTreeSet<String> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
                .collect();
            if declared != template {
                found.push(format!(
                    "{at}: path parameters {declared:?}, template {template:?}"
                ));
            }
            let security = op["security"].as_array().cloned().unwrap_or_default();
            for requirement in &security {
                for name in requirement.as_object().expect("requirement").keys() {
                    if !schemes.contains(name) {
                        found.push(format!("{at}: undeclared security scheme {name}"));
                    }
                }
            }
            for (status, response) in op["responses"].as_object().expect("responses") {
                let is_error = status.starts_with('4') || status.starts_with('5');
                if let (true, Some(content)) = (is_error, response["content"].as_object())
                    && !content.contains_key("application/problem+json")
                {
                    found.push(format!("{at}: {status} is not application/problem+json"));
                }
            }
            for status in EDGE {
                let needs_credential = matches!(*status, "401" | "403");
                if (!needs_credential || !security.is_empty())
                    && op["responses"].get(*status).is_none()
                {
                    found.push(format!("{at}: no {status} response"));
                }
            }
        }
    }
    found
}

fn collect_refs(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => into.push(r.clone()),
                    _ => collect_refs(v, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, into)),
        _ => {}
    }
}

/// Runs `openapi-spec-validator` on `text`; outside CI a missing validator skips with a notice.
fn validator_accepts(name: &str, text: &str) {
    let slug: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let file = std::env::temp_dir().join(format!("bff-openapi-{}-{slug}.json", std::process::id()));
    std::fs::write(&file, text).expect("write document");
    let run = Command::new("openapi-spec-validator").arg(&file).output();
    let _ = std::fs::remove_file(&file);
    let out = match run {
        Ok(out) => out,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("openapi-spec-validator not available ({e}); skipped outside CI");
            return;
        }
        Err(e) => panic!("openapi-spec-validator is required in CI: {e}"),
    };
    assert!(
        out.status.success(),
        "{name}: openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Mocks + the scaffold's example gateway with its defaults.
async fn tv() -> (mock_services::MockStack, RunningGateway) {
    let mocks = mocks().await;
    let gw = start(bff_tv::app, config_for(bff_tv::defaults(), &mocks)).await;
    (mocks, gw)
}

async fn document(gw: &RunningGateway) -> (String, Value) {
    let r = get(&format!("{}/openapi.json", gw.url), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let doc = r.json();
    (r.body, doc)
}

fn assert_valid(name: &str, text: &str, doc: &Value) {
    let found = problems(doc);
    assert!(found.is_empty(), "{name}: {found:#?}");
    validator_accepts(name, text);
}

#[tokio::test]
async fn every_gateway_serves_a_valid_document() {
    for (name, (mocks, gw)) in [
        ("bff-web", web().await),
        ("bff-mobile", mobile().await),
        ("bff-partner", partner().await),
        ("bff-tv", tv().await),
    ] {
        let (text, doc) = document(&gw).await;
        assert_valid(name, &text, &doc);
        assert_eq!(doc["openapi"], "3.1.0");
        assert_no_leak(&text, &mocks);
        gw.shutdown().await;
    }
}

/// The configured authentication decides the security scheme, whatever a handler's annotation says; the
/// listing's query parameters are query parameters.
#[tokio::test]
async fn security_scheme_follows_the_configured_auth_mode() {
    let (_mocks, gw) = web().await;
    let (_, doc) = document(&gw).await;
    assert_eq!(
        doc["components"]["securitySchemes"],
        serde_json::json!({"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}})
    );
    let listing = &doc["paths"]["/api/products"]["get"];
    let query: BTreeSet<&str> = listing["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter(|p| p["in"] == "query")
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(
        query,
        BTreeSet::from(["category", "q", "page", "page_size"])
    );
    assert_eq!(listing["security"], serde_json::json!([{"bearer": []}]));

    let (_mocks, partner) = partner().await;
    let (_, doc) = document(&partner).await;
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes.keys().collect::<Vec<_>>(), ["api_key"]);
    assert_eq!(
        doc["paths"]["/v1/products"]["get"]["responses"]["429"]["content"]["application/problem+json"]
            ["schema"]["$ref"],
        "#/components/schemas/Problem"
    );

    // Without authentication nothing claims a credential is needed.
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    config.auth.mode = bff_core::config::AuthMode::None;
    let open = start(bff_web::app, config).await;
    let (text, doc) = document(&open).await;
    assert!(doc["components"].get("securitySchemes").is_none());
    assert!(
        !text.contains("\"security\""),
        "no operation requires a credential"
    );
    assert_valid("bff-web without auth", &text, &doc);
}

/// `[[routes]]` and `[[aggregates]]` are operations of the document, with their path and query parameters
/// and scopes.
#[tokio::test]
async fn config_routes_and_aggregates_are_documented() {
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    config.routes.push(RouteConfig {
        path: "/api/cards/{id}".into(),
        downstream: "catalog".into(),
        downstream_path: "/products/{id}".into(),
        grpc_method: None,
        query_allow: vec!["lang".into()],
        header_allow: vec![],
        fields: vec!["name".into()],
        scopes: vec!["catalog:read".into()],
    });
    config.aggregates.push(AggregateConfig {
        path: "/api/users/{id}/summary".into(),
        merge: MergeMode::Nest,
        parts: vec![AggregatePartConfig::new("user", "users", "/users/{id}")],
        scopes: vec![],
    });
    let gw = start(bff_web::app, config).await;
    let (text, doc) = document(&gw).await;
    assert_valid("bff-web with config routes", &text, &doc);
    let card = &doc["paths"]["/api/cards/{id}"]["get"];
    let params: Vec<(&str, &str)> = card["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["in"].as_str().unwrap()))
        .collect();
    assert_eq!(params, [("id", "path"), ("lang", "query")]);
    assert_eq!(
        card["security"],
        serde_json::json!([{"bearer": ["catalog:read"]}])
    );
    let summary = &doc["paths"]["/api/users/{id}/summary"]["get"];
    assert_eq!(summary["parameters"][0]["name"], "id");
    assert!(summary["responses"]["504"].is_object());
    assert_no_leak(&text, &mocks);
    assert!(
        !text.contains("/users/{id}\""),
        "downstream paths stay internal"
    );
}

/// Runs Schemathesis (PyPI) against a running gateway's document: generated requests (boundary values and
/// fuzzed parameters and bodies) must get documented statuses, documented media types, bodies that match
/// their schemas, and no 500. Outside CI a missing `schemathesis` skips with a notice.
fn schemathesis_accepts(name: &str, gw: &RunningGateway, credential: &str) {
    let url = format!("{}/openapi.json", gw.url);
    // The one event stream (bff-web): its 200 is an unbounded `text/event-stream` that ends only at the idle
    // timeout, and Schemathesis reads whole bodies, so a generated id that names an order of the caller would
    // hang the run. Its contract is checked by tests/tests/streams.rs instead; only this operation is
    // excluded, by exact path.
    let args = [
        "-H",
        credential,
        "--exclude-path",
        "/api/orders/{id}/events",
    ];
    common::schemathesis(name, &url, "20261201", &args);
}

/// Each gateway keeps the contract its document states, under Schemathesis' generated requests. Runs on a
/// blocking thread: the gateway keeps serving on the test's runtime meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_keep_the_documented_contract() {
    let (mocks, web) = web().await;
    let scopes = ["orders:read", "orders:write", "reviews:write", "cart:write"];
    let bearer = format!(
        "Authorization: Bearer {}",
        token(&mocks, "7", "bff-web", &scopes).await
    );
    let (mocks_m, mobile) = mobile().await;
    let mobile_bearer = format!(
        "Authorization: Bearer {}",
        token(&mocks_m, "7", "bff-mobile", &scopes).await
    );
    let (_mocks_p, partner) = partner().await;
    let (mocks_tv, tv) = tv().await;
    let tv_bearer = format!(
        "Authorization: Bearer {}",
        token(&mocks_tv, "7", "bff-tv", &[]).await
    );
    tokio::task::spawn_blocking(move || {
        schemathesis_accepts("bff-web", &web, &bearer);
        schemathesis_accepts("bff-mobile", &mobile, &mobile_bearer);
        schemathesis_accepts("bff-partner", &partner, "x-api-key: dev-acme-key");
        schemathesis_accepts("bff-tv", &tv, &tv_bearer);
    })
    .await
    .expect("schemathesis runs");
}
