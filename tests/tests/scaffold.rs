//! The gateway made by the scaffold (`cargo run -p dev-stack -- new-gateway bff-tv`; `dev-stack`'s golden
//! test checks the checked-in `bff-tv` is exactly its output) works as a gateway: against the mocks over
//! real HTTP, its one composed endpoint answers the composed view with a real token, names a failed optional
//! part, refuses a missing token and a malformed id with problems, and inherits the domain's rate limits.

mod common;

use common::*;
use mock_services::{FaultKind, FaultRule, Service};

/// Mocks + bff-tv with its defaults, without the response cache (faults are seen at once).
async fn tv() -> (mock_services::MockStack, RunningGateway) {
    let mocks = mocks().await;
    let config = uncached(config_for(bff_tv::defaults(), &mocks));
    let gw = start(bff_tv::app, config).await;
    (mocks, gw)
}

#[tokio::test]
async fn scaffolded_gateway_composes_its_endpoint() {
    let (mocks, gw) = tv().await;
    let token = token(&mocks, "7", "bff-tv", &[]).await;
    let url = format!("{}/api/tiles/3", gw.url);
    let r = get_auth(&url, &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let tile = r.json();
    assert_eq!(tile["id"], "3");
    assert!(
        tile["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{tile}"
    );
    assert!(tile["price"]["amount_cents"].as_i64().is_some(), "{tile}");
    assert!(tile["stars"].as_f64().is_some(), "{tile}");
    assert!(r.header("bff-partial").is_none());

    // The optional rating failing: 200, `stars: null`, `bff-partial: rating`.
    mocks
        .handle(Service::Reviews)
        .set_faults(vec![FaultRule::new(FaultKind::Error { status: 500 })]);
    let r = get_auth(&url, &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["stars"].is_null());
    assert_eq!(r.header("bff-partial"), Some("rating"));
    assert_no_leak(&r.body, &mocks);

    // The required product failing fails the request, with a problem that leaks nothing.
    mocks
        .handle(Service::Catalog)
        .set_faults(vec![FaultRule::new(FaultKind::Error { status: 500 })]);
    let r = get_auth(&url, &token).await;
    assert!(r.status >= 500, "{}", r.body);
    assert_no_leak(&r.body, &mocks);
    gw.shutdown().await;
}

#[tokio::test]
async fn scaffolded_gateway_refuses_with_problems_and_is_limited() {
    let (mocks, gw) = tv().await;
    // No token: 401 problem. A token for another gateway: 401 too.
    get(&format!("{}/api/tiles/3", gw.url), &[])
        .await
        .assert_problem(401, "unauthenticated", &mocks);
    let web_token = token(&mocks, "7", "bff-web", &[]).await;
    get_auth(&format!("{}/api/tiles/3", gw.url), &web_token)
        .await
        .assert_problem(401, "unauthenticated", &mocks);
    // A malformed id names nothing: 404 without a catalog call; an unknown one is the catalog's 404.
    let token = token(&mocks, "7", "bff-tv", &[]).await;
    let before = mocks.handle(Service::Catalog).received_total();
    for bad in ["x1", "1a", "-1", "1.5"] {
        get_auth(&format!("{}/api/tiles/{bad}", gw.url), &token)
            .await
            .assert_problem(404, "not_found", &mocks);
    }
    assert_eq!(mocks.handle(Service::Catalog).received_total(), before);
    get_auth(&format!("{}/api/tiles/999999", gw.url), &token)
        .await
        .assert_problem(404, "not_found", &mocks);
    // The domain's default rate limits apply: the response announces the per-user policy.
    let r = get_auth(&format!("{}/api/tiles/3", gw.url), &token).await;
    let policy = r.header("ratelimit-policy").unwrap_or_default();
    assert!(policy.contains("user"), "{policy}");
    // The document: the endpoint, its path parameter and bearer security, the edge's errors.
    let doc = get(&format!("{}/openapi.json", gw.url), &[]).await.json();
    let op = &doc["paths"]["/api/tiles/{id}"]["get"];
    assert_eq!(op["security"], serde_json::json!([{"bearer": []}]));
    assert_eq!(op["parameters"][0]["in"], "path");
    for status in ["401", "404", "429", "504"] {
        assert!(op["responses"][status].is_object(), "{status}");
    }
    gw.shutdown().await;
}
