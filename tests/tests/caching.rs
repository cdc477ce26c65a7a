//! Caching and bandwidth over real HTTP: the downstream response cache (Cache-Control honoured, errors never
//! stored, keys that respect identity), request coalescing and cross-request batching counted at the
//! downstream, stale-while-revalidate and stale-if-error, the client-facing Cache-Control / ETag / 304 /
//! Vary, compression, sparse fieldsets, the Redis second level (and its outage), and the cache counters.

mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bff_core::BffConfig;
use bff_core::config::{DownstreamConfig, RouteConfig};
use common::*;
use mock_services::{FaultKind, FaultRule, MockStack, Service};
use redis_server::RedisServer;

const ACME: &str = "dev-acme-key";
const GLOBEX: &str = "dev-globex-key";

/// A downstream made for these tests: counts calls per path and answers by path:
/// `/shared` (`max-age=60`), `/nostore` (`no-store`), `/private` (`private, max-age=60`, echoes the
/// partner), `/me` (no directive, echoes the partner), `/short` (`max-age=1`), `/slow` (300 ms, no
/// directive), `/fail` (500). Every body carries `n`, the call count of its path.
struct Echo {
    url: String,
    calls: Arc<Mutex<HashMap<String, u64>>>,
    failing: Arc<Mutex<bool>>,
}

impl Echo {
    async fn start() -> Self {
        let calls: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
        let failing: Arc<Mutex<bool>> = Arc::default();
        let app = Router::new()
            .route("/{name}", axum::routing::get(echo))
            .with_state((calls.clone(), failing.clone()));
        Self {
            url: serve_router(app).await,
            calls,
            failing,
        }
    }

    fn count(&self, path: &str) -> u64 {
        self.calls.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    fn fail(&self, on: bool) {
        *self.failing.lock().unwrap() = on;
    }
}

type EchoState = (Arc<Mutex<HashMap<String, u64>>>, Arc<Mutex<bool>>);

async fn echo(
    State((calls, failing)): State<EchoState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let n = {
        let mut calls = calls.lock().unwrap();
        let n = calls.entry(format!("/{name}")).or_default();
        *n += 1;
        *n
    };
    if *failing.lock().unwrap() || name == "fail" {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let partner = headers
        .get("x-bff-partner-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let body = axum::Json(serde_json::json!({"n": n, "partner": partner}));
    let directive = match name.as_str() {
        "shared" => Some("public, max-age=60"),
        "nostore" => Some("no-store"),
        "private" => Some("private, max-age=60"),
        "short" => Some("max-age=1"),
        "slow" => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            None
        }
        _ => None,
    };
    match directive {
        Some(d) => ([(header::CACHE_CONTROL, d)], body).into_response(),
        None => body.into_response(),
    }
}

/// bff-partner with two extra downstreams on `echo` — `echo` (per caller, TTL 60 s) and `echo_shared`
/// (`shared = true`, no TTL of its own) — reachable through `/e/{p}` and `/s/{p}`.
fn echo_config(mocks: &MockStack, echo: &Echo, tune: impl FnOnce(&mut BffConfig)) -> BffConfig {
    let mut c = config_for(bff_partner::defaults(), mocks);
    c.rate_limit.policies.clear();
    let mut own = DownstreamConfig::at(&echo.url);
    own.cache.ttl_s = 60;
    c.downstreams.insert("echo".into(), own);
    let mut shared = DownstreamConfig::at(&echo.url);
    shared.cache.shared = true;
    c.downstreams.insert("echo_shared".into(), shared);
    for (public, downstream) in [("/e/{p}", "echo"), ("/s/{p}", "echo_shared")] {
        c.routes.push(RouteConfig {
            path: public.into(),
            downstream: downstream.into(),
            downstream_path: "/{p}".into(),
            grpc_method: None,
            query_allow: vec![],
            header_allow: vec![],
            fields: vec![],
            scopes: vec![],
        });
    }
    tune(&mut c);
    c
}

async fn as_partner(gw: &RunningGateway, path: &str, key: &str) -> Reply {
    get(&format!("{}{path}", gw.url), &[("x-api-key", key)]).await
}

/// The downstream's `max-age` is honoured (one call for two requests), `no-store` is never stored, and
/// errors are never cached.
#[tokio::test]
async fn downstream_cache_control_is_honoured_and_errors_never_cached() {
    let mocks = mocks().await;
    let echo = Echo::start().await;
    let gw = start(bff_partner::app, echo_config(&mocks, &echo, |_| {})).await;
    for _ in 0..2 {
        let r = as_partner(&gw, "/s/shared", ACME).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["n"], 1);
    }
    assert_eq!(
        echo.count("/shared"),
        1,
        "second request served from the cache"
    );
    for i in 1..=2 {
        let r = as_partner(&gw, "/s/nostore", ACME).await;
        assert_eq!(r.json()["n"], i);
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
    for _ in 0..2 {
        as_partner(&gw, "/e/fail", ACME)
            .await
            .assert_problem(502, "bad_gateway", &mocks);
    }
    assert_eq!(echo.count("/fail"), 2, "errors are never cached");
}

/// Identity: a per-caller downstream keys entries by the caller, and a `private` answer of a shared
/// downstream too, so partner B never receives partner A's data; a shared answer is shared.
#[tokio::test]
async fn user_b_never_receives_user_a_data() {
    let mocks = mocks().await;
    let echo = Echo::start().await;
    let gw = start(bff_partner::app, echo_config(&mocks, &echo, |_| {})).await;
    for (path, calls_path) in [("/e/me", "/me"), ("/s/private", "/private")] {
        let a = as_partner(&gw, path, ACME).await;
        let b = as_partner(&gw, path, GLOBEX).await;
        let a2 = as_partner(&gw, path, ACME).await;
        let b2 = as_partner(&gw, path, GLOBEX).await;
        assert_eq!(a.json()["partner"], "acme", "{path}");
        assert_eq!(b.json()["partner"], "globex", "{path}: B got A's data");
        assert_eq!(a2.json(), a.json(), "{path}: A's entry is served to A");
        assert_eq!(b2.json(), b.json(), "{path}: B's entry is served to B");
        assert_eq!(echo.count(calls_path), 2, "{path}: one call per caller");
        assert!(a.header("cache-control").unwrap().starts_with("private"));
    }
    // Concurrent requests of both partners on a private answer of a shared downstream: never crossed.
    let requests = (0..20).map(|i| {
        let key = if i % 2 == 0 { ACME } else { GLOBEX };
        let url = format!("{}/s/private?x={}", gw.url, i / 2);
        async move {
            let r = get(&url, &[("x-api-key", key)]).await;
            (
                key,
                r.json()["partner"].as_str().unwrap_or_default().to_owned(),
            )
        }
    });
    for (key, partner) in futures::future::join_all(requests).await {
        let expected = if key == ACME { "acme" } else { "globex" };
        assert_eq!(partner, expected);
    }
}

/// Concurrent identical misses make one downstream call (coalescing), counted at the mock, also with the
/// response store off; `bff_cache_coalesced_total` counts the joiners.
#[tokio::test]
async fn concurrent_identical_misses_make_one_call() {
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    config.rate_limit.policies.clear();
    config.downstreams.get_mut("catalog").unwrap().cache.enabled = false;
    let gw = start(bff_web::app, config).await;
    let token = token(&mocks, "7", "bff-web", &[]).await;
    let catalog = mocks.handle(Service::Catalog);
    catalog.set_faults(vec![
        FaultRule::new(FaultKind::Latency {
            ms: 300,
            jitter_ms: 0,
        })
        .with_prefix("/products/42"),
    ]);
    let url = format!("{}/api/products/42", gw.url);
    let requests = (0..20).map(|_| get_auth(&url, &token));
    for r in futures::future::join_all(requests).await {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let calls = catalog.route_count("GET /products/{id}");
    assert_eq!(calls, 1, "20 concurrent requests, {calls} calls");
    let metrics = get(&format!("{}/metrics", gw.admin_url), &[]).await;
    assert_eq!(metrics.status, 200);
    let coalesced = metric(
        &metrics.body,
        "bff_cache_coalesced_total{downstream=\"catalog\"}",
    );
    assert!(coalesced >= 19, "{}", metrics.body);
    // Without coalescing (and without the store) every request calls.
    let mut config = config_for(bff_web::defaults(), &mocks);
    config.rate_limit.policies.clear();
    let catalog_config = config.downstreams.get_mut("catalog").unwrap();
    catalog_config.cache.enabled = false;
    catalog_config.cache.coalesce = false;
    let gw = start(bff_web::app, config).await;
    catalog.reset_received();
    let url = format!("{}/api/products/42", gw.url);
    let requests = (0..5).map(|_| get_auth(&url, &token));
    futures::future::join_all(requests).await;
    assert_eq!(catalog.route_count("GET /products/{id}"), 5);
}

/// The value of the sample `series` in a Prometheus text body.
fn metric(body: &str, series: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Stale-while-revalidate: after its freshness an entry is served (marked stale, `no-cache` for the
/// client) while one background call refreshes it; the next request gets the refreshed value.
#[tokio::test]
async fn stale_while_revalidate_serves_and_refreshes() {
    let mocks = mocks().await;
    let echo = Echo::start().await;
    let config = echo_config(&mocks, &echo, |c| {
        c.downstreams
            .get_mut("echo_shared")
            .unwrap()
            .cache
            .stale_while_revalidate_s = 30;
    });
    let gw = start(bff_partner::app, config).await;
    assert_eq!(as_partner(&gw, "/s/short", ACME).await.json()["n"], 1);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let stale = as_partner(&gw, "/s/short", ACME).await;
    assert_eq!(stale.json()["n"], 1, "the stale entry is served at once");
    assert_eq!(stale.header("bff-degraded"), Some("upstream=stale"));
    assert_eq!(stale.header("cache-control"), Some("private, no-cache"));
    assert!(eventually(Duration::from_secs(3), || echo.count("/short") == 2).await);
    let mut fresh = as_partner(&gw, "/s/short", ACME).await;
    for _ in 0..20 {
        if fresh.json()["n"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        fresh = as_partner(&gw, "/s/short", ACME).await;
    }
    assert_eq!(fresh.json()["n"], 2, "the refreshed entry is served");
    assert!(fresh.header("bff-degraded").is_none());
}

/// Stale-if-error: when the downstream fails after the entry's freshness, the stale entry is served and
/// named in `bff-degraded`; beyond the window the failure is the client's again.
#[tokio::test]
async fn stale_if_error_serves_within_bounds() {
    let mocks = mocks().await;
    let echo = Echo::start().await;
    let config = echo_config(&mocks, &echo, |c| {
        let cache = &mut c.downstreams.get_mut("echo_shared").unwrap().cache;
        cache.stale_if_error_s = 1;
    });
    let gw = start(bff_partner::app, config).await;
    assert_eq!(as_partner(&gw, "/s/short", ACME).await.json()["n"], 1);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    echo.fail(true);
    let r = as_partner(&gw, "/s/short", ACME).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["n"], 1);
    assert_eq!(r.header("bff-degraded"), Some("upstream=stale"));
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    as_partner(&gw, "/s/short", ACME)
        .await
        .assert_problem(502, "bad_gateway", &mocks);
    echo.fail(false);
}

/// On the web gateway: the product page served while the catalog is down, from the stale product.
#[tokio::test]
async fn web_product_page_survives_a_catalog_outage() {
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    config.downstreams.get_mut("catalog").unwrap().cache.ttl_s = 1;
    let gw = start(bff_web::app, config).await;
    let token = token(&mocks, "7", "bff-web", &[]).await;
    let url = format!("{}/api/products/42", gw.url);
    let first = get_auth(&url, &token).await;
    assert_eq!(first.status, 200);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    mocks
        .handle(Service::Catalog)
        .set_faults(vec![FaultRule::new(FaultKind::Error { status: 503 })]);
    let r = get_auth(&url, &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["product"], first.json()["product"]);
    let degraded = r.header("bff-degraded").unwrap_or_default();
    assert!(degraded.contains("product=stale"), "{degraded}");
}

/// Cross-request batching: product lookups of concurrent requests within the window are merged into few
/// batch calls (each answer still has exactly its own items); without a window, every request calls.
#[tokio::test]
async fn concurrent_lookups_are_batched_and_split_back() {
    let mocks = mocks().await;
    let catalog = mocks.handle(Service::Catalog);
    let run = |window_ms: u64| {
        let mocks = &mocks;
        async move {
            let mut config = config_for(bff_partner::defaults(), mocks);
            config.rate_limit.policies.clear();
            for name in ["catalog", "inventory"] {
                config
                    .downstreams
                    .get_mut(name)
                    .unwrap()
                    .cache
                    .batch_window_ms = window_ms;
            }
            let gw = start(bff_partner::app, config).await;
            catalog.reset_received();
            let requests = (0..10).map(|i| {
                let url = format!("{}/v1/products?ids={},{}", gw.url, 100 + i, 200 + i);
                async move { (i, get(&url, &[("x-api-key", GLOBEX)]).await) }
            });
            for (i, r) in futures::future::join_all(requests).await {
                assert_eq!(r.status, 200, "{}", r.body);
                let ids: Vec<String> = r.json()["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["id"].as_str().unwrap().to_owned())
                    .collect();
                assert_eq!(ids, [format!("{}", 100 + i), format!("{}", 200 + i)]);
            }
            catalog.route_count("GET /products")
        }
    };
    let batched = run(50).await;
    let unbatched = run(0).await;
    assert_eq!(unbatched, 10);
    assert!(
        batched <= 4,
        "10 concurrent requests made {batched} batch calls"
    );
}

/// Client-facing Cache-Control: strictest part wins (web product page: stock's 5 s), always private for
/// an authenticated caller, `no-cache` when a part states no freshness (home: profile and orders) or the
/// response is partial; `Vary` names the credential header.
#[tokio::test]
async fn composed_cache_control_and_vary() {
    let (mocks, gw) = web().await;
    let token = token(&mocks, "7", "bff-web", &[]).await;
    let product = get_auth(&format!("{}/api/products/42", gw.url), &token).await;
    assert_eq!(product.status, 200);
    let cc = product.header("cache-control").unwrap();
    let max_age: u64 = cc
        .strip_prefix("private, max-age=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{cc}"));
    assert!((1..=5).contains(&max_age), "{cc}");
    assert!(
        product
            .headers
            .get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().contains("authorization"))
    );
    let home = get_auth(&format!("{}/api/home", gw.url), &token).await;
    assert_eq!(home.header("cache-control"), Some("private, no-cache"));
    mocks
        .handle(Service::Reviews)
        .set_faults(vec![FaultRule::new(FaultKind::Error { status: 500 })]);
    let partial = get_auth(&format!("{}/api/products/43", gw.url), &token).await;
    assert!(partial.header("bff-partial").is_some());
    assert_eq!(partial.header("cache-control"), Some("private, no-cache"));
    let (_mocks, partner) = common::partner().await;
    let r = get(
        &format!("{}/v1/products/42", partner.url),
        &[("x-api-key", ACME)],
    )
    .await;
    assert!(
        r.header("cache-control")
            .unwrap()
            .starts_with("private, max-age=")
    );
    assert_eq!(r.header("vary"), Some("x-api-key"));
}

/// Every gateway tags 200 answers strongly and answers a matching If-None-Match with an empty 304 (web,
/// partner; mobile has its own tests), carrying the same ETag and Cache-Control.
#[tokio::test]
async fn etag_and_304_on_every_gateway() {
    let (mocks, gw) = web().await;
    let token = token(&mocks, "7", "bff-web", &[]).await;
    let auth = format!("Bearer {token}");
    let url = format!("{}/api/home", gw.url);
    let first = get(&url, &[("authorization", &auth)]).await;
    let tag = first.header("etag").unwrap().to_owned();
    assert_eq!(tag, bff_core::etag::tag_of(first.body.as_bytes()));
    let second = get(&url, &[("authorization", &auth), ("if-none-match", &tag)]).await;
    assert_eq!(second.status, 304);
    assert!(second.body.is_empty());
    assert_eq!(second.header("etag"), Some(tag.as_str()));
    assert_eq!(second.header("cache-control"), Some("private, no-cache"));
    assert!(second.header("content-encoding").is_none());
    let (_m, partner) = common::partner().await;
    let url = format!("{}/v1/products/42", partner.url);
    let first = get(&url, &[("x-api-key", ACME)]).await;
    let tag = first.header("etag").unwrap().to_owned();
    let second = get(&url, &[("x-api-key", ACME), ("if-none-match", &tag)]).await;
    assert_eq!(second.status, 304);
    let other = get(&url, &[("x-api-key", ACME), ("if-none-match", "\"0\"")]).await;
    assert_eq!(other.status, 200);
}

/// Compression: gzip or brotli by Accept-Encoding above the minimum size (with `Vary: accept-encoding`
/// and its own ETag), none for small bodies, none without Accept-Encoding, and never on a 304.
#[tokio::test]
async fn compression_by_accept_encoding() {
    let (mocks, gw) = web().await;
    let token = token(&mocks, "7", "bff-web", &[]).await;
    let auth = format!("Bearer {token}");
    let url = format!("{}/api/home", gw.url);
    let plain = get(&url, &[("authorization", &auth)]).await;
    assert!(plain.body.len() > 1024, "home is big enough to compress");
    assert!(plain.header("content-encoding").is_none());
    let raw = |encoding: &'static str| {
        let (url, auth) = (url.clone(), auth.clone());
        async move {
            let r = client()
                .get(&url)
                .header("authorization", auth)
                .header("accept-encoding", encoding)
                .send()
                .await
                .unwrap();
            let headers = r.headers().clone();
            (headers, r.bytes().await.unwrap())
        }
    };
    let (headers, body) = raw("gzip").await;
    assert_eq!(headers["content-encoding"], "gzip");
    assert_eq!(&body[..2], &[0x1f, 0x8b], "gzip magic");
    assert!(body.len() < plain.body.len());
    assert!(
        headers
            .get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().contains("accept-encoding"))
    );
    let gzip_tag = headers["etag"].to_str().unwrap().to_owned();
    assert_ne!(Some(gzip_tag.as_str()), plain.header("etag"));
    let (headers, body) = raw("br;q=1, gzip;q=0.5").await;
    assert_eq!(headers["content-encoding"], "br");
    assert!(body.len() < plain.body.len());
    // A 304 for the gzip representation: no body, no encoding.
    let r = client()
        .get(&url)
        .header("authorization", &auth)
        .header("accept-encoding", "gzip")
        .header("if-none-match", &gzip_tag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert!(r.headers().get("content-encoding").is_none());
    assert!(r.bytes().await.unwrap().is_empty());
    // Small bodies are sent as they are.
    let r = client()
        .get(format!("{}/healthz", gw.url))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("content-encoding").is_none());
}

/// Sparse fieldsets on mobile and partner: the chosen fields only; unknown or disallowed fields are a 400
/// problem naming them.
#[tokio::test]
async fn sparse_fieldsets_on_mobile_and_partner() {
    let (mocks, gw) = mobile().await;
    let token = token(&mocks, "7", "bff-mobile", &[]).await;
    let r = get_auth(
        &format!("{}/api/home?fields=first_name,orders.id", gw.url),
        &token,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert!(v["first_name"].is_string());
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["first_name", "orders"]);
    for order in v["orders"].as_array().unwrap() {
        assert_eq!(order.as_object().unwrap().len(), 1, "{order}");
    }
    let r = get_auth(
        &format!("{}/api/home?fields=first_name,email,orders.secret", gw.url),
        &token,
    )
    .await;
    r.assert_problem(400, "bad_request", &mocks);
    let detail = r.json()["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("email, orders.secret"), "{detail}");
    let (mocks, partner) = common::partner().await;
    let r = get(
        &format!(
            "{}/v1/products?ids=1,2&fields=items.id,items.price.amount_cents",
            partner.url
        ),
        &[("x-api-key", ACME)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["items"][0],
        serde_json::json!({"id": "1", "price": {"amount_cents": r.json()["items"][0]["price"]["amount_cents"]}})
    );
    get(
        &format!("{}/v1/products/42?fields=internal_cost", partner.url),
        &[("x-api-key", ACME)],
    )
    .await
    .assert_problem(400, "bad_request", &mocks);
}

/// The Redis second level: an answer fetched by one instance is served to another from Redis (one
/// downstream call for both); with Redis killed, requests are still answered (local cache, then the
/// downstream), never errors.
#[tokio::test]
async fn redis_second_level_shared_and_outage_degrades() {
    let mocks = mocks().await;
    let mut redis = RedisServer::start();
    let config = || {
        let mut c = config_for(bff_partner::defaults(), &mocks);
        c.rate_limit.policies.clear();
        c.cache.redis.enabled = true;
        c.cache.redis.url = redis.url();
        c.cache.redis.timeout_ms = 500;
        c.cache.redis.retry_interval_ms = 300;
        c
    };
    let one = start(bff_partner::app, config()).await;
    let two = start(bff_partner::app, config()).await;
    let catalog = mocks.handle(Service::Catalog);
    let r1 = get(
        &format!("{}/v1/products/42", one.url),
        &[("x-api-key", GLOBEX)],
    )
    .await;
    assert_eq!(r1.status, 200);
    // The write to Redis is in the background: wait until the second instance can see it.
    let mut r2 = None;
    for _ in 0..50 {
        let mut conn = redis.connection().await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("bff:cache:*")
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            r2 = Some(
                get(
                    &format!("{}/v1/products/42", two.url),
                    &[("x-api-key", GLOBEX)],
                )
                .await,
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r2 = r2.expect("entry written to Redis");
    assert_eq!(r2.status, 200);
    assert_eq!(r2.json(), r1.json());
    assert_eq!(
        catalog.route_count("GET /products/{id}"),
        1,
        "one call for both instances"
    );
    redis.kill();
    for id in [42, 43, 44] {
        let r = get(
            &format!("{}/v1/products/{id}", two.url),
            &[("x-api-key", GLOBEX)],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let metrics = get(&format!("{}/metrics", two.admin_url), &[]).await;
    assert!(
        metric(&metrics.body, "bff_cache_redis_hits_total") >= 1,
        "{}",
        metrics.body
    );
    assert!(
        metric(&metrics.body, "bff_cache_redis_errors_total") >= 1,
        "{}",
        metrics.body
    );
}

/// `/metrics` is on the admin listener (not the public port), Prometheus text, and counts hits and misses
/// per downstream.
#[tokio::test]
async fn metrics_endpoint_counts_cache_hits() {
    let (mocks, gw) = partner().await;
    for _ in 0..3 {
        get(
            &format!("{}/v1/products/42", gw.url),
            &[("x-api-key", GLOBEX)],
        )
        .await;
    }
    let public = get(&format!("{}/metrics", gw.url), &[("x-api-key", GLOBEX)]).await;
    public.assert_problem(404, "not_found", &mocks);
    let r = get(&format!("{}/metrics", gw.admin_url), &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert_eq!(
        metric(&r.body, "bff_cache_misses_total{downstream=\"catalog\"}"),
        1
    );
    assert_eq!(
        metric(&r.body, "bff_cache_hits_total{downstream=\"catalog\"}"),
        2
    );
    assert!(r.body.contains("# TYPE bff_cache_hits_total counter"));
}

/// The closing-note figure: downstream calls made by N concurrent web home requests (distinct users, each
/// loading home twice), without any of it, with the response cache only, and with cache + coalescing +
/// batching. Bounded (loopback, 2 × 24 requests per configuration); prints the counts
/// (`cargo test -p tests --test caching -- --nocapture web_home_calls`).
#[tokio::test]
async fn web_home_calls_with_and_without_caching() {
    let mocks = mocks().await;
    let users: Vec<String> = (1..=24).map(|u| u.to_string()).collect();
    let mut tokens = Vec::new();
    for u in &users {
        tokens.push(token(&mocks, u, "bff-web", &[]).await);
    }
    let tokens = &tokens;
    let run = |label: &'static str, tune: fn(&mut DownstreamConfig)| {
        let mocks = &mocks;
        async move {
            let mut config = config_for(bff_web::defaults(), mocks);
            config.rate_limit.policies.clear();
            for d in config.downstreams.values_mut() {
                tune(d);
            }
            let gw = start(bff_web::app, config).await;
            for h in mocks.handles() {
                h.reset_received();
            }
            let home = format!("{}/api/home", gw.url);
            for _round in 0..2 {
                let requests = tokens.iter().map(|t| get_auth(&home, t));
                for r in futures::future::join_all(requests).await {
                    assert_eq!(r.status, 200, "{}", r.body);
                }
            }
            let count = |s: Service| mocks.handle(s).received_total();
            let (catalog, inventory) = (count(Service::Catalog), count(Service::Inventory));
            let total: u64 = [
                Service::Users,
                Service::Orders,
                Service::Recommendations,
                Service::Catalog,
                Service::Inventory,
            ]
            .into_iter()
            .map(count)
            .sum();
            println!(
                "web home, 2 x 24 concurrent users: {label:<32} total {total:>4} calls (catalog {catalog:>3}, inventory {inventory:>3})"
            );
            gw.shutdown().await;
            total
        }
    };
    let none = run("no cache, no coalescing/batching", |d| {
        d.cache.enabled = false;
        d.cache.coalesce = false;
        d.cache.batch_window_ms = 0;
    })
    .await;
    let cache_only = run("response cache only", |d| {
        d.cache.coalesce = false;
        d.cache.batch_window_ms = 0;
    })
    .await;
    let all = run("cache + coalescing + batching", |_| {}).await;
    assert!(cache_only < none, "{cache_only} < {none}");
    assert!(all < cache_only, "{all} < {cache_only}");
}

/// A downstream that tags its answers: `/doc` is `{"v": <version>, "pad": …}` (~2 KB) with `ETag: "v<version>"`,
/// the version set by the test; `/weak` has a weak tag, `/bad` a value that is not an entity tag.
async fn tagged_downstream(version: Arc<Mutex<u32>>) -> String {
    let app = Router::new().route(
        "/{name}",
        axum::routing::get(move |Path(name): Path<String>| {
            let v = *version.lock().unwrap();
            async move {
                let tag = match name.as_str() {
                    "doc" => format!("\"v{v}\""),
                    "weak" => "W/\"w1\"".to_owned(),
                    _ => "unquoted".to_owned(),
                };
                let body = serde_json::json!({"v": v, "pad": "x".repeat(2000)});
                ([(header::ETAG, tag)], axum::Json(body)).into_response()
            }
        }),
    );
    common::serve_router(app).await
}

/// A forwarding route whose downstream sends an `ETag` answers with a tag derived from it (not the
/// downstream's own, not a hash of the body): the same while the downstream's tag is, new when it changes, a
/// `304` when `If-None-Match` names it, weak when the downstream's is weak or when the answer is compressed
/// here (and that weak tag still gets its `304`). A value that is not an entity tag, and a shaped route, fall
/// back to the tag of the body sent.
#[tokio::test]
async fn forwarded_answers_take_their_tag_from_the_downstream() {
    let mocks = mocks().await;
    let version = Arc::new(Mutex::new(1));
    let url = tagged_downstream(version.clone()).await;
    let mut config = config_for(bff_partner::defaults(), &mocks);
    config.rate_limit.policies.clear();
    let mut tagged = DownstreamConfig::at(&url);
    tagged.cache.enabled = false;
    tagged.cache.coalesce = false;
    config.downstreams.insert("tagged".into(), tagged);
    for (public, fields) in [("/t/{p}", vec![]), ("/shaped/{p}", vec!["v".to_owned()])] {
        config.routes.push(RouteConfig {
            path: public.into(),
            downstream: "tagged".into(),
            downstream_path: "/{p}".into(),
            grpc_method: None,
            query_allow: vec![],
            header_allow: vec![],
            fields,
            scopes: vec![],
        });
    }
    let gw = start(bff_partner::app, config).await;
    let derived = |tag: &str| {
        let value = header::HeaderValue::from_str(tag).unwrap();
        let derived = bff_core::etag::tag_of_downstream(&value).unwrap();
        derived.to_str().unwrap().to_owned()
    };

    let first = as_partner(&gw, "/t/doc", ACME).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let tag = first.header("etag").unwrap().to_owned();
    assert_eq!(tag, derived("\"v1\""));
    assert!(tag.starts_with('"') && tag.len() == 18, "{tag}");
    assert_ne!(tag, bff_core::etag::tag_of(first.body.as_bytes()));
    let again = as_partner(&gw, "/t/doc", ACME).await;
    assert_eq!(again.header("etag"), Some(tag.as_str()));
    let revalidated = get(
        &format!("{}/t/doc", gw.url),
        &[("x-api-key", ACME), ("if-none-match", &tag)],
    )
    .await;
    assert_eq!(revalidated.status, 304);
    assert!(revalidated.body.is_empty());
    assert_eq!(revalidated.header("etag"), Some(tag.as_str()));
    assert!(revalidated.header("content-type").is_none());

    // The downstream's representation changes: so does the tag, and the old one no longer matches.
    *version.lock().unwrap() = 2;
    let changed = get(
        &format!("{}/t/doc", gw.url),
        &[("x-api-key", ACME), ("if-none-match", &tag)],
    )
    .await;
    assert_eq!(changed.status, 200);
    assert_eq!(changed.json()["v"], 2);
    let new_tag = changed.header("etag").unwrap().to_owned();
    assert_eq!(new_tag, derived("\"v2\""));
    assert_ne!(new_tag, tag);

    // Compressed here: the derived tag becomes weak, and a revalidation with it gets its 304.
    let gzip = client()
        .get(format!("{}/t/doc", gw.url))
        .header("x-api-key", ACME)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gzip.headers()["content-encoding"], "gzip");
    let weak = gzip.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(weak, format!("W/{new_tag}"));
    let revalidated = client()
        .get(format!("{}/t/doc", gw.url))
        .header("x-api-key", ACME)
        .header("accept-encoding", "gzip")
        .header("if-none-match", &weak)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);
    assert!(revalidated.headers().get("content-encoding").is_none());
    assert!(revalidated.bytes().await.unwrap().is_empty());

    // A weak downstream tag stays weak; a value that is not a tag falls back to the body's tag.
    let weak = as_partner(&gw, "/t/weak", ACME).await;
    assert_eq!(weak.header("etag"), Some(derived("W/\"w1\"").as_str()));
    assert!(weak.header("etag").unwrap().starts_with("W/\""));
    let bad = as_partner(&gw, "/t/bad", ACME).await;
    assert_eq!(bad.status, 200);
    assert_eq!(
        bad.header("etag"),
        Some(bff_core::etag::tag_of(bad.body.as_bytes()).as_str())
    );
    // Shaped: the body sent is not the downstream's, so its tag is the tag of that body.
    let shaped = as_partner(&gw, "/shaped/doc", ACME).await;
    assert_eq!(shaped.status, 200);
    assert_eq!(shaped.json(), serde_json::json!({"v": 2}));
    assert_eq!(
        shaped.header("etag"),
        Some(bff_core::etag::tag_of(shaped.body.as_bytes()).as_str())
    );
}
