//! Downstream resilience over real HTTP, driven by the mocks' fault injection: every fault mode on required and
//! optional parts, deadlines (respected and announced), cancellation observed at the mock, circuit breakers,
//! retries (GET yes, POST never, capped by the budget), instances (ejection, active health checks), load
//! shedding and fallbacks.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bff_core::config::{AggregateConfig, AggregatePartConfig, DownstreamConfig, MergeMode};
use bff_core::downstream::{Downstream, DownstreamErrorKind, http_client};
use bff_core::trace::TraceContext;
use bff_core::{BffConfig, RequestContext};
use common::*;
use mock_services::{FaultKind, FaultRule, MockHandle, MockStack, Service, ServiceConfig};

const AUD: &str = "bff-web";

/// bff-web over `mocks`, with `tune` applied to its configuration.
async fn web_with(mocks: &MockStack, tune: impl FnOnce(&mut BffConfig)) -> RunningGateway {
    let mut config = config_for(bff_web::defaults(), mocks);
    tune(&mut config);
    start(bff_web::app, config).await
}

fn downstream<'a>(config: &'a mut BffConfig, name: &str) -> &'a mut DownstreamConfig {
    config
        .downstreams
        .get_mut(name)
        .expect("downstream configured")
}

/// Every fault mode of the mocks, with what a required part answers for it.
fn fault_modes() -> Vec<(&'static str, FaultKind, u16, &'static str)> {
    vec![
        (
            "latency",
            FaultKind::Latency {
                ms: 2_000,
                jitter_ms: 0,
            },
            504,
            "deadline_exceeded",
        ),
        (
            "error 500",
            FaultKind::Error { status: 500 },
            502,
            "bad_gateway",
        ),
        (
            "error 503",
            FaultKind::Error { status: 503 },
            502,
            "bad_gateway",
        ),
        ("reset", FaultKind::Reset, 502, "bad_gateway"),
        ("hang", FaultKind::Hang, 504, "deadline_exceeded"),
        (
            "malformed json",
            FaultKind::MalformedJson,
            502,
            "bad_gateway",
        ),
        (
            "slow drip",
            FaultKind::SlowDrip {
                bytes_per_chunk: 8,
                interval_ms: 100,
            },
            504,
            "deadline_exceeded",
        ),
        (
            "oversized",
            FaultKind::Oversized {
                bytes: 8 * 1024 * 1024,
            },
            502,
            "bad_gateway",
        ),
    ]
}

/// Each fault mode fails a required part with its contract status (never leaking anything) and turns an
/// optional part into a partial 200.
#[tokio::test]
async fn every_fault_mode_on_required_and_optional_parts() {
    let mocks = mocks().await;
    let gw = web_with(&mocks, |c| {
        for name in ["users", "recommendations"] {
            let d = downstream(c, name);
            d.timeout_ms = 300;
            d.resilience.breaker.enabled = false;
        }
    })
    .await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let url = format!("{}/api/home", gw.url);
    for (label, kind, status, code) in fault_modes() {
        let users = mocks.handle(Service::Users);
        users.set_faults(vec![FaultRule::new(kind.clone())]);
        let r = get_auth(&url, &token).await;
        assert_eq!(r.status, status, "required part, {label}: {}", r.body);
        r.assert_problem(status, code, &mocks);
        assert_eq!(r.json()["part"], "profile", "{label}");
        users.clear_faults();

        let recs = mocks.handle(Service::Recommendations);
        recs.set_faults(vec![FaultRule::new(kind)]);
        let r = get_auth(&url, &token).await;
        assert_eq!(r.status, 200, "optional part, {label}: {}", r.body);
        assert_eq!(r.header("bff-partial"), Some("recommendations"), "{label}");
        assert!(r.json()["recommendations"].is_null(), "{label}");
        assert_no_leak(&r.body, &mocks);
        recs.clear_faults();
    }
}

/// A request ends with 504 near its budget even when a downstream is slower than its own call timeout, and
/// every downstream call is told how long it has in `x-bff-deadline-ms`.
#[tokio::test]
async fn deadline_is_respected_and_announced() {
    let mocks = mocks().await;
    let gw = web_with(&mocks, |c| {
        c.server.request_timeout_ms = 500;
        downstream(c, "users").timeout_ms = 5_000;
    })
    .await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let url = format!("{}/api/home", gw.url);
    let r = get_auth(&url, &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let users = mocks.handle(Service::Users);
    let announced: u64 = users
        .last_header("x-bff-deadline-ms")
        .expect("deadline header sent")
        .parse()
        .expect("milliseconds");
    assert!(announced > 0 && announced <= 500, "{announced}");
    users.set_faults(vec![FaultRule::new(FaultKind::Latency {
        ms: 3_000,
        jitter_ms: 0,
    })]);
    let started = Instant::now();
    let r = get_auth(&url, &token).await;
    let elapsed = started.elapsed();
    r.assert_problem(504, "deadline_exceeded", &mocks);
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_millis(2_000),
        "answered after {elapsed:?}"
    );
}

/// The per-call timeout is announced when it is shorter than what remains of the budget.
#[tokio::test]
async fn call_timeout_is_announced_when_shorter() {
    let mocks = mocks().await;
    let gw = web_with(&mocks, |c| downstream(c, "users").timeout_ms = 700).await;
    let token = token(&mocks, "7", AUD, &[]).await;
    get_auth(&format!("{}/api/home", gw.url), &token).await;
    let announced: u64 = mocks
        .handle(Service::Users)
        .last_header("x-bff-deadline-ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!(announced > 0 && announced <= 700, "{announced}");
}

/// When the client goes away, the gateway abandons its downstream calls: the mock sees the call dropped long
/// before any timeout or deadline would have ended it.
#[tokio::test]
async fn client_disconnect_cancels_downstream_calls() {
    let mocks = mocks().await;
    let gw = web_with(&mocks, |c| {
        c.server.request_timeout_ms = 60_000;
        downstream(c, "recommendations").timeout_ms = 60_000;
    })
    .await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let recs = mocks.handle(Service::Recommendations);
    recs.set_faults(vec![FaultRule::new(FaultKind::Hang)]);
    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let gone = impatient
        .get(format!("{}/api/home", gw.url))
        .bearer_auth(&token)
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up");
    assert_eq!(recs.received_total(), 1, "the call had started");
    assert!(
        eventually(Duration::from_secs(5), || recs.abandoned() == 1).await,
        "the mock saw the call abandoned"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// A failing required part cancels its still-running siblings at once.
#[tokio::test]
async fn required_failure_cancels_siblings() {
    let mocks = mocks().await;
    let gw = web_with(&mocks, |c| {
        c.server.request_timeout_ms = 60_000;
        downstream(c, "recommendations").timeout_ms = 60_000;
    })
    .await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let recs = mocks.handle(Service::Recommendations);
    recs.set_faults(vec![FaultRule::new(FaultKind::Hang)]);
    // The profile fails after 200 ms, when the recommendations call surely reached its mock.
    mocks.handle(Service::Users).set_faults(vec![
        FaultRule::new(FaultKind::Latency {
            ms: 200,
            jitter_ms: 0,
        }),
        FaultRule::new(FaultKind::Error { status: 500 }),
    ]);
    let started = Instant::now();
    let r = get_auth(&format!("{}/api/home", gw.url), &token).await;
    r.assert_problem(502, "bad_gateway", &mocks);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(recs.received_total(), 1, "the sibling call had started");
    assert!(
        eventually(Duration::from_secs(5), || recs.abandoned() == 1).await,
        "the sibling call was abandoned"
    );
}

/// After the configured consecutive failures the breaker opens: required parts answer 503 `circuit_open`
/// with `Retry-After`, optional parts are partial at once, and no call reaches the downstream. After the
/// cool-down one probe goes through; a failed probe reopens, a successful one closes.
#[tokio::test]
async fn breaker_opens_stops_calls_probes_and_closes() {
    let mocks = mocks().await;
    let gw = web_with(&mocks, |c| {
        for name in ["users", "recommendations"] {
            let d = downstream(c, name);
            d.resilience.retry.max_retries = 0;
            d.resilience.breaker.consecutive_failures = 3;
            d.resilience.breaker.open_ms = 1_000;
        }
    })
    .await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let url = format!("{}/api/home", gw.url);
    let users = mocks.handle(Service::Users);
    users.set_faults(vec![FaultRule::new(FaultKind::Error { status: 500 })]);
    for _ in 0..3 {
        get_auth(&url, &token)
            .await
            .assert_problem(502, "bad_gateway", &mocks);
    }
    assert_eq!(users.received_total(), 3);
    for _ in 0..5 {
        let r = get_auth(&url, &token).await;
        r.assert_problem(503, "circuit_open", &mocks);
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(r.json()["part"], "profile");
    }
    assert_eq!(users.received_total(), 3, "no call while open");
    // Cool-down over, still failing: the probe fails and the breaker reopens.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    get_auth(&url, &token)
        .await
        .assert_problem(502, "bad_gateway", &mocks);
    assert_eq!(users.received_total(), 4, "one probe");
    get_auth(&url, &token)
        .await
        .assert_problem(503, "circuit_open", &mocks);
    assert_eq!(users.received_total(), 4);
    // Recovered: the next probe succeeds and closes the breaker.
    users.clear_faults();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for _ in 0..3 {
        assert_eq!(get_auth(&url, &token).await.status, 200);
    }
    assert_eq!(users.received_total(), 7, "closed: every call goes through");

    // An optional part behind an open breaker is partial at once.
    let recs = mocks.handle(Service::Recommendations);
    recs.reset_received();
    recs.set_faults(vec![FaultRule::new(FaultKind::Error { status: 500 })]);
    for _ in 0..6 {
        let r = get_auth(&url, &token).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("bff-partial"), Some("recommendations"));
    }
    assert_eq!(recs.received_total(), 3, "no call while open");
}

fn ctx(budget: Duration) -> RequestContext {
    RequestContext::new(
        "test-request".into(),
        TraceContext::from_headers(&Default::default()),
        None,
        tokio::time::Instant::now() + budget,
    )
}

/// A downstream client of `handle` with `tune` applied to its configuration.
fn client_of(handle: &MockHandle, tune: impl FnOnce(&mut DownstreamConfig)) -> Downstream {
    let mut config = DownstreamConfig::at(handle.url());
    config.resilience.breaker.enabled = false;
    tune(&mut config);
    Downstream::new("identity", &config, http_client(Duration::from_millis(500)))
}

/// A GET that fails with 503 is retried (2 retries by default); a POST never is, whatever the failure.
/// (`Downstream::post_json` and `Downstream::command` share this path; see also `writes.rs`.)
#[tokio::test]
async fn retries_get_never_post() {
    let mocks = mocks().await;
    let idp = mocks.handle(Service::Identity);
    idp.set_faults(vec![FaultRule::new(FaultKind::Error { status: 503 })]);
    let client = client_of(idp, |_| {});
    let ctx = ctx(Duration::from_secs(10));
    let e = client
        .get_json::<serde_json::Value>(&ctx, "/.well-known/jwks.json")
        .await
        .unwrap_err();
    assert_eq!(e.kind, DownstreamErrorKind::Status(503));
    assert_eq!(
        idp.route_count("GET /.well-known/jwks.json"),
        3,
        "1 call + 2 retries"
    );
    let e = client
        .post_json::<_, serde_json::Value>(&ctx, "/token", &serde_json::json!({"sub": "1"}))
        .await
        .unwrap_err();
    assert_eq!(e.kind, DownstreamErrorKind::Status(503));
    assert_eq!(idp.route_count("POST /token"), 1, "a POST is never retried");
    idp.set_faults(vec![FaultRule::new(FaultKind::Reset)]);
    client
        .post_json::<_, serde_json::Value>(&ctx, "/token", &serde_json::json!({"sub": "1"}))
        .await
        .unwrap_err();
    assert_eq!(
        idp.route_count("POST /token"),
        2,
        "not after a reset either"
    );
    // Not retried: a 500 (the service answered), nor a per-call timeout.
    idp.set_faults(vec![FaultRule::new(FaultKind::Error { status: 500 })]);
    idp.reset_received();
    client
        .get_json::<serde_json::Value>(&ctx, "/.well-known/jwks.json")
        .await
        .unwrap_err();
    assert_eq!(idp.received_total(), 1);
}

/// Through a gateway, a retryable failure of a GET is retried with the defaults.
#[tokio::test]
async fn gateway_retries_with_defaults() {
    let mocks = mocks().await;
    let gw = web_with(&mocks, |_| {}).await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let users = mocks.handle(Service::Users);
    users.set_faults(vec![FaultRule::new(FaultKind::Reset)]);
    get_auth(&format!("{}/api/home", gw.url), &token)
        .await
        .assert_problem(502, "bad_gateway", &mocks);
    assert_eq!(users.received_total(), 3);
}

/// The retry budget caps retries at the configured fraction of calls: with a ratio of 0.5 and no floor,
/// 10 failing calls cause 5 retries, not 20.
#[tokio::test]
async fn retry_budget_caps_retries() {
    let mocks = mocks().await;
    let idp = mocks.handle(Service::Identity);
    idp.set_faults(vec![FaultRule::new(FaultKind::Error { status: 503 })]);
    let client = client_of(idp, |c| {
        c.resilience.retry.budget_ratio = 0.5;
        c.resilience.retry.budget_min_per_s = 0;
    });
    let ctx = ctx(Duration::from_secs(10));
    for _ in 0..10 {
        client
            .get_json::<serde_json::Value>(&ctx, "/.well-known/jwks.json")
            .await
            .unwrap_err();
    }
    assert_eq!(idp.received_total(), 15, "10 calls + 5 retries");
}

/// No call starts once the request's budget is spent.
#[tokio::test]
async fn no_call_after_the_budget_is_spent() {
    let mocks = mocks().await;
    let idp = mocks.handle(Service::Identity);
    let client = client_of(idp, |_| {});
    let ctx = ctx(Duration::ZERO);
    let e = client
        .get_json::<serde_json::Value>(&ctx, "/.well-known/jwks.json")
        .await
        .unwrap_err();
    assert_eq!(e.kind, DownstreamErrorKind::Deadline);
    assert_eq!(idp.received_total(), 0);
}

/// Hedging: a GET that has not answered after the hedge delay gets a second attempt on the other instance,
/// and the first answer wins.
#[tokio::test]
async fn hedged_get_wins_on_the_fast_instance() {
    let slow = spawn_one(Service::Identity).await;
    let fast = spawn_one(Service::Identity).await;
    slow.set_faults(vec![FaultRule::new(FaultKind::Latency {
        ms: 3_000,
        jitter_ms: 0,
    })]);
    let client = client_of(&slow, |c| {
        c.resilience.instances = vec![fast.url()];
        c.resilience.balance = bff_core::resilience::BalanceMode::RoundRobin;
        c.resilience.retry.hedge_after_ms = 100;
        c.timeout_ms = 5_000;
    });
    let ctx = ctx(Duration::from_secs(10));
    let started = Instant::now();
    // Round-robin starts with the first (slow) instance, so the hedge goes to the fast one.
    client
        .get_json::<serde_json::Value>(&ctx, "/.well-known/jwks.json")
        .await
        .expect("the hedge answers");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(slow.received_total(), 1);
    assert_eq!(fast.received_total(), 1);
}

async fn spawn_one(service: Service) -> MockHandle {
    mock_services::spawn(
        service,
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        ServiceConfig::default(),
    )
    .await
    .expect("mock starts")
}

/// With two instances of users, one failing: requests keep succeeding (the retry goes to the other
/// instance), the failing instance is ejected after the configured failures and gets no more traffic.
#[tokio::test]
async fn failing_instance_is_ejected_and_traffic_moves() {
    let mocks = mocks().await;
    let second = spawn_one(Service::Users).await;
    let first = mocks.handle(Service::Users);
    first.set_faults(vec![FaultRule::new(FaultKind::Error { status: 503 })]);
    let gw = web_with(&mocks, |c| {
        let d = downstream(c, "users");
        d.resilience.instances = vec![second.url()];
        d.resilience.ejection.consecutive_failures = 2;
        d.resilience.ejection.eject_ms = 60_000;
    })
    .await;
    let token = token(&mocks, "7", AUD, &[]).await;
    for i in 0..20 {
        let r = get_auth(&format!("{}/api/home", gw.url), &token).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
    }
    assert!(
        first.received_total() <= 2,
        "ejected after 2 failures: {}",
        first.received_total()
    );
    assert!(second.received_total() >= 20);
}

/// Active health checks eject a dead instance before any request fails on it (no retries configured).
#[tokio::test]
async fn active_health_checks_eject_a_dead_instance() {
    let mocks = mocks().await;
    // A dead instance: the port stays ours (so no other test's server can take it), connections are
    // accepted by the kernel but never answered.
    let dead = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    let gw = web_with(&mocks, |c| {
        let d = downstream(c, "users");
        d.resilience.instances = vec![dead_url];
        d.resilience.retry.max_retries = 0;
        d.resilience.ejection.consecutive_failures = 0;
        d.resilience.health_check.interval_ms = 50;
        d.resilience.health_check.timeout_ms = 100;
    })
    .await;
    let token = token(&mocks, "7", AUD, &[]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..10 {
        let r = get_auth(&format!("{}/api/home", gw.url), &token).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
    }
    assert_eq!(mocks.handle(Service::Users).received_total(), 10);
    drop(dead);
}

/// Beyond the global limit of requests in flight the gateway answers 503 `overloaded` with `Retry-After` at
/// once, and serves again when load goes down; a per-route limit sheds only its route; liveness is never shed.
#[tokio::test]
async fn load_shedding_refuses_fast_and_recovers() {
    let mocks = mocks().await;
    let gw = web_with(&mocks, |c| {
        // Two identical home requests must both reach users (not coalesced into one call).
        downstream(c, "users").cache.coalesce = false;
        c.server.load_shed.max_in_flight = 2;
        c.server
            .load_shed
            .routes
            .insert("/api/products/{id}".into(), 1);
    })
    .await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let users = mocks.handle(Service::Users);
    users.set_faults(vec![FaultRule::new(FaultKind::Latency {
        ms: 1_500,
        jitter_ms: 0,
    })]);
    let home = format!("{}/api/home", gw.url);
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let (home, token) = (home.clone(), token.clone());
            tokio::spawn(async move { get_auth(&home, &token).await.status })
        })
        .collect();
    assert!(eventually(Duration::from_secs(3), || users.received_total() == 2).await);
    let started = Instant::now();
    let r = get_auth(&home, &token).await;
    r.assert_problem(503, "overloaded", &mocks);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "refused at once"
    );
    assert_eq!(get(&format!("{}/healthz", gw.url), &[]).await.status, 200);
    for task in slow {
        assert_eq!(task.await.unwrap(), 200);
    }
    users.clear_faults();
    assert_eq!(get_auth(&home, &token).await.status, 200, "recovered");

    // Per route: one product page in flight at most, while other routes are served.
    mocks.handle(Service::Catalog).set_faults(vec![
        FaultRule::new(FaultKind::Latency {
            ms: 1_500,
            jitter_ms: 0,
        })
        .with_prefix("/products/42"),
    ]);
    let product = format!("{}/api/products/42", gw.url);
    let slow = {
        let (product, token) = (product.clone(), token.clone());
        tokio::spawn(async move { get_auth(&product, &token).await.status })
    };
    let catalog = mocks.handle(Service::Catalog);
    assert!(
        eventually(Duration::from_secs(3), || catalog
            .route_count("GET /products/{id}")
            == 1)
        .await
    );
    get_auth(&format!("{}/api/products/43", gw.url), &token)
        .await
        .assert_problem(503, "overloaded", &mocks);
    assert_eq!(
        get_auth(&home, &token).await.status,
        200,
        "other routes served"
    );
    assert_eq!(slow.await.unwrap(), 200);
    assert_eq!(get_auth(&product, &token).await.status, 200);
}

/// A failing part with a fallback is served its last good value (per caller) or its static default, named in
/// `bff-degraded`; a required part with a last good value does not fail the request.
#[tokio::test]
async fn fallbacks_serve_stale_or_default_and_are_marked() {
    let mocks = mocks().await;
    let part = |name: &str, downstream: &str, path: &str, required: bool| AggregatePartConfig {
        name: name.into(),
        downstream: downstream.into(),
        path: path.into(),
        required,
        fallback: None,
        stale_max_age_s: 0,
        ..Default::default()
    };
    let gw = web_with(&mocks, |c| {
        // The parts' own fallbacks are under test, not the response cache's stale entries.
        *c = uncached(std::mem::take(c));
        c.aggregates.push(AggregateConfig {
            path: "/api/overview/{id}".into(),
            merge: MergeMode::Nest,
            parts: vec![
                AggregatePartConfig {
                    stale_max_age_s: 60,
                    ..part("user", "users", "/users/{id}", true)
                },
                AggregatePartConfig {
                    stale_max_age_s: 60,
                    ..part(
                        "recs",
                        "recommendations",
                        "/users/{id}/recommendations?limit=3",
                        false,
                    )
                },
                AggregatePartConfig {
                    fallback: Some(serde_json::json!({"average": 0, "count": 0})),
                    ..part("rating", "reviews", "/products/{id}/rating", false)
                },
            ],
            scopes: vec![],
        });
    })
    .await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let other = token_for_other_user(&mocks).await;
    let url = format!("{}/api/overview/7", gw.url);
    let fresh = get_auth(&url, &token).await;
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    assert!(fresh.header("bff-degraded").is_none());
    for service in [Service::Users, Service::Recommendations, Service::Reviews] {
        mocks
            .handle(service)
            .set_faults(vec![FaultRule::new(FaultKind::Error { status: 500 })]);
    }
    let degraded = get_auth(&url, &token).await;
    assert_eq!(degraded.status, 200, "{}", degraded.body);
    assert_eq!(
        degraded.header("bff-degraded"),
        Some("user=stale,recs=stale,rating=default")
    );
    assert!(degraded.header("bff-partial").is_none());
    let (f, d) = (fresh.json(), degraded.json());
    assert_eq!(d["user"], f["user"]);
    assert_eq!(d["recs"], f["recs"]);
    assert_eq!(d["rating"], serde_json::json!({"average": 0, "count": 0}));
    // Another caller never gets the first caller's last good values.
    let r = get_auth(&url, &other).await;
    r.assert_problem(502, "bad_gateway", &mocks);
}

async fn token_for_other_user(mocks: &MockStack) -> String {
    token(mocks, "8", AUD, &[]).await
}
