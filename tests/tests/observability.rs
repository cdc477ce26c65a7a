//! Operations over real HTTP: the admin listener (metrics, probes, redacted config; `/metrics` gone from the
//! public port), exact metric values after a scripted sequence of requests and faults (parsed by the
//! reference Python client's parser, `tests/tools/parse_metrics.py`, and checked by `promtool check
//! metrics`), bounded label cardinality under
//! thousands of distinct ids, and the opt-in `Server-Timing` header.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use bff_core::BffConfig;
use common::*;
use futures::StreamExt as _;
use mock_services::{FaultKind, FaultRule, Service};

const AUD: &str = "bff-web";
const PRODUCT: &str = "/api/products/{id}";

/// One sample, as the reference parser read it.
#[derive(Debug, serde::Deserialize)]
struct Sample {
    /// Sample name (`_bucket`, `_count`, `_sum`, `_total` suffixes included).
    name: String,
    labels: std::collections::HashMap<String, String>,
    value: f64,
}

/// Parsed samples.
struct Scrape {
    samples: Vec<Sample>,
}

/// Parses `text` with `tests/tools/parse_metrics.py` (Python `prometheus_client`; `.ci/run` installs it).
fn parse(text: &str) -> Scrape {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/parse_metrics.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("parser runs");
    assert!(
        out.status.success(),
        "the Prometheus parser refused the exposition (is `prometheus_client` installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("sample json"))
        .collect();
    Scrape { samples }
}

/// The admin `/metrics` of `gw`, as text and parsed.
async fn scrape(gw: &RunningGateway) -> (String, Scrape) {
    let r = get(&format!("{}/metrics", gw.admin_url), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let scrape = parse(&r.body);
    (r.body, scrape)
}

/// The sum of the samples named `name` whose labels include `labels` (0 when absent).
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// The observation count of the histogram `name` with `labels`: its `+Inf` bucket, checked equal to
/// `_count`.
fn observations(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut inf = labels.to_vec();
    inf.push(("le", "+Inf"));
    let bucket = value(scrape, &format!("{name}_bucket"), &inf);
    assert_eq!(bucket, value(scrape, &format!("{name}_count"), labels));
    bucket
}

/// `promtool check metrics` accepts `text` (lint included). Required in CI (`.ci/run` installs the Debian
/// package `prometheus`); skipped with a note elsewhere when promtool is missing.
fn promtool_accepts(text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("promtool not available ({e}); skipped outside CI");
            return;
        }
        Err(e) => panic!("promtool is required in CI: {e}"),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn web_config(mocks: &mock_services::MockStack) -> BffConfig {
    let mut config = uncached(config_for(bff_web::defaults(), mocks));
    config.rate_limit.policies.clear();
    let reviews = config.downstreams.get_mut("reviews").expect("reviews");
    reviews.resilience.retry.max_retries = 0;
    reviews.resilience.breaker.consecutive_failures = 2;
    let inventory = config.downstreams.get_mut("inventory").expect("inventory");
    inventory.resilience.retry.max_retries = 1;
    inventory.resilience.breaker.enabled = false;
    config
}

/// A scripted sequence of requests and faults gives exact counts: requests by route template, method and
/// status; latency observations; part outcomes (ok and failed); downstream attempts by outcome (ok, error
/// status, breaker open); retries; breaker state and transitions; authentication failures.
#[tokio::test]
async fn exact_metrics_after_a_scripted_sequence() {
    let mocks = mocks().await;
    let gw = start(bff_web::app, web_config(&mocks)).await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let bearer = format!("Bearer {token}");
    let auth = [("authorization", bearer.as_str())];

    // 1. Three complete product pages.
    for id in 1..=3 {
        let r = get(&format!("{}/api/products/{id}", gw.url), &auth).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("bff-partial"), None);
    }
    // 2. Reviews fail (500): the first page's two reviews calls fail and open the breaker (2 consecutive
    //    failures); the second page's reviews calls fail fast. Inventory answers 503 and is retried once.
    mocks
        .handle(Service::Reviews)
        .set_faults(vec![FaultRule::new(FaultKind::Error { status: 500 })]);
    mocks
        .handle(Service::Inventory)
        .set_faults(vec![FaultRule::new(FaultKind::Error { status: 503 })]);
    for id in 4..=5 {
        let r = get(&format!("{}/api/products/{id}", gw.url), &auth).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let partial: BTreeSet<&str> = r.header("bff-partial").unwrap().split(',').collect();
        assert_eq!(
            partial,
            BTreeSet::from(["rating", "reviews", "availability"]),
            "{partial:?}"
        );
    }
    // 3. A malformed id (404, no downstream call), no credentials (401), an unknown path (404).
    assert_eq!(
        get(&format!("{}/api/products/abc", gw.url), &auth)
            .await
            .status,
        404
    );
    assert_eq!(get(&format!("{}/api/home", gw.url), &[]).await.status, 401);
    assert_eq!(
        get(&format!("{}/nope/123", gw.url), &auth).await.status,
        404
    );

    let (text, m) = scrape(&gw).await;
    let req = |route: &str, status: &str| {
        value(
            &m,
            "bff_http_requests_total",
            &[("route", route), ("method", "GET"), ("status", status)],
        )
    };
    assert_eq!(req(PRODUCT, "200"), 5.0, "{text}");
    assert_eq!(req(PRODUCT, "404"), 1.0);
    assert_eq!(req("/api/home", "401"), 1.0);
    assert_eq!(req("unmatched", "404"), 1.0);
    assert_eq!(
        observations(
            &m,
            "bff_http_request_duration_seconds",
            &[("route", PRODUCT)]
        ),
        6.0,
        "{text}"
    );
    assert_eq!(value(&m, "bff_http_requests_in_flight", &[]), 0.0);

    let part = |name: &str, outcome: &str| {
        value(
            &m,
            "bff_part_outcomes_total",
            &[("route", PRODUCT), ("part", name), ("outcome", outcome)],
        )
    };
    assert_eq!(part("product", "ok"), 5.0, "{text}");
    assert_eq!(part("related", "ok"), 5.0);
    for failing in ["rating", "reviews", "availability"] {
        assert_eq!(part(failing, "ok"), 3.0, "{failing}");
        assert_eq!(part(failing, "failed"), 2.0, "{failing}");
    }
    // Share of complete responses, the one query of the dashboard: 3 of 5 for availability.
    assert_eq!(
        part("availability", "stale") + part("availability", "default"),
        0.0
    );

    let ds = |downstream: &str, outcome: &str| {
        value(
            &m,
            "bff_downstream_requests_total",
            &[("downstream", downstream), ("outcome", outcome)],
        )
    };
    assert_eq!(ds("reviews", "ok"), 6.0, "{text}");
    assert_eq!(ds("reviews", "error_status"), 2.0, "{text}");
    assert_eq!(ds("reviews", "breaker_open"), 2.0, "{text}");
    assert_eq!(ds("inventory", "ok"), 3.0, "{text}");
    assert_eq!(ds("inventory", "error_status"), 4.0, "{text}");
    assert_eq!(
        value(
            &m,
            "bff_downstream_retries_total",
            &[("downstream", "inventory")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &m,
            "bff_downstream_retries_total",
            &[("downstream", "reviews")]
        ),
        0.0
    );
    // Attempts that were sent have a latency; the fast failures have none.
    assert_eq!(
        observations(
            &m,
            "bff_downstream_request_duration_seconds",
            &[("downstream", "reviews")]
        ),
        8.0
    );
    assert_eq!(
        value(&m, "bff_circuit_state", &[("downstream", "reviews")]),
        1.0
    );
    assert_eq!(
        value(&m, "bff_circuit_state", &[("downstream", "catalog")]),
        0.0
    );
    assert_eq!(
        value(
            &m,
            "bff_circuit_transitions_total",
            &[("downstream", "reviews"), ("to", "open")]
        ),
        1.0
    );
    assert_eq!(value(&m, "bff_auth_failures_total", &[]), 1.0, "{text}");
    assert!(value(&m, "process_resident_memory_bytes", &[]) > 1e6);
    assert!(value(&m, "process_open_fds", &[]) > 3.0);
    promtool_accepts(&text);
}

/// Label values stay bounded: thousands of distinct ids, unknown paths and query strings add no series.
#[tokio::test]
async fn labels_stay_bounded_under_distinct_ids() {
    let mocks = mocks().await;
    let gw = start(bff_web::app, web_config(&mocks)).await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let bearer = format!("Bearer {token}");
    let (_, before) = scrape(&gw).await;
    let client = client();
    let requests = (0..1500).map(|i| {
        let url = match i % 3 {
            0 => format!("{}/api/products/x{i}", gw.url),
            1 => format!("{}/unknown-{i}/{i}", gw.url),
            _ => format!("{}/api/products/y{i}?q=z{i}", gw.url),
        };
        let request = client.get(url).header("authorization", &bearer);
        async move { request.send().await.expect("request").status().as_u16() }
    });
    // 64 at a time: the point is many distinct paths, not 1,500 simultaneous connections (which, on a loaded
    // 2-core machine, met the gateway's own overload protection and got 429s).
    let statuses: Vec<u16> = futures::stream::iter(requests)
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 404), "{statuses:?}");
    let (text, after) = scrape(&gw).await;
    let routes: BTreeSet<&str> = after
        .samples
        .iter()
        .filter_map(|s| s.labels.get("route").map(String::as_str))
        .collect();
    assert_eq!(routes, BTreeSet::from([PRODUCT, "unmatched"]), "{routes:?}");
    // Two route values at most: per route one request counter series and one histogram (11 buckets,
    // +Inf, _sum, _count).
    assert!(
        after.samples.len() <= before.samples.len() + 2 * (1 + 14),
        "{} series before, {} after",
        before.samples.len(),
        after.samples.len()
    );
    for needle in ["x1", "unknown-", "y2", "z2"] {
        assert!(
            !text.contains(needle),
            "a raw path leaked into labels: {needle}"
        );
    }
    assert_eq!(
        value(
            &after,
            "bff_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        500.0
    );
}

/// The admin listener serves probes and the redacted configuration; the public port no longer serves
/// `/metrics` (and the admin paths are not public paths).
#[tokio::test]
async fn admin_listener_serves_probes_and_redacted_config() {
    let mocks = mocks().await;
    let mut config = config_for(bff_partner::defaults(), &mocks);
    config.cache.redis.url = "redis://bff:hunter2@127.0.0.1:1/0".into();
    let gw = start(bff_partner::app, config).await;
    assert_eq!(
        get(&format!("{}/healthz", gw.admin_url), &[]).await.status,
        200
    );
    assert_eq!(
        get(&format!("{}/readyz", gw.admin_url), &[]).await.status,
        200
    );
    let c = get(&format!("{}/config", gw.admin_url), &[]).await;
    assert_eq!(c.status, 200);
    let json = c.json();
    assert_eq!(json["auth"]["mode"], "api_key");
    assert_eq!(json["auth"]["api_keys"][0]["key_sha256"], "<redacted>");
    assert!(!c.body.contains("hunter2"), "{}", c.body);
    // Public: /metrics and /config are unknown (401 before 404 for the unauthenticated caller).
    assert_eq!(get(&format!("{}/metrics", gw.url), &[]).await.status, 401);
    assert_eq!(get(&format!("{}/config", gw.url), &[]).await.status, 401);
    // Draining fails readiness on both ports at once, liveness stays.
    gw.admin.readiness().start_draining();
    get(&format!("{}/readyz", gw.admin_url), &[])
        .await
        .assert_problem(503, "not_ready", &mocks);
    assert_eq!(get(&format!("{}/readyz", gw.url), &[]).await.status, 503);
    assert_eq!(get(&format!("{}/healthz", gw.url), &[]).await.status, 200);
}

/// `Server-Timing` is opt-in: absent by default, and with `telemetry.server_timing` it names the total and
/// every part with its duration and outcome.
#[tokio::test]
async fn server_timing_is_opt_in() {
    let mocks = mocks().await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let gw = start(bff_web::app, web_config(&mocks)).await;
    let url = format!("{}/api/products/1", gw.url);
    let r = get_auth(&url, &token).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("server-timing"), None);
    let mut config = web_config(&mocks);
    config.telemetry.server_timing = true;
    let gw = start(bff_web::app, config).await;
    mocks
        .handle(Service::Reviews)
        .set_faults(vec![FaultRule::new(FaultKind::Error { status: 500 })]);
    let r = get_auth(&format!("{}/api/products/1", gw.url), &token).await;
    let timing = r.header("server-timing").expect("server-timing").to_owned();
    assert!(timing.starts_with("total;dur="), "{timing}");
    assert!(timing.contains("product;dur="), "{timing}");
    assert!(
        timing.contains("reviews;dur=") && timing.contains("desc=\"failed\""),
        "{timing}"
    );
}

/// Refusals are counted by their bounded cause: the rate-limit policy that refused, and shed requests by
/// route template.
#[tokio::test]
async fn refusals_are_counted_by_policy_and_route() {
    let mocks = mocks().await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let mut config = web_config(&mocks);
    config.rate_limit.policies = vec![bff_core::ratelimit::PolicyConfig::new(
        "tiny",
        &[bff_core::ratelimit::KeyPart::User],
        1,
        60,
        2,
    )];
    config.server.load_shed.route_max_in_flight = 1;
    let gw = start(bff_web::app, config).await;
    // Two slow requests at once on one route: one is admitted, the other shed.
    mocks
        .handle(Service::Catalog)
        .set_faults(vec![FaultRule::new(FaultKind::Latency {
            ms: 300,
            jitter_ms: 0,
        })]);
    let url = format!("{}/api/products/1", gw.url);
    let (a, b) = tokio::join!(get_auth(&url, &token), get_auth(&url, &token));
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 503]);
    mocks.handle(Service::Catalog).clear_faults();
    // The policy allows a burst of 2 (one spent above, the shed request never reached the limiter).
    assert_eq!(get_auth(&url, &token).await.status, 200);
    assert_eq!(get_auth(&url, &token).await.status, 429);
    assert_eq!(get_auth(&url, &token).await.status, 429);
    let (text, m) = scrape(&gw).await;
    assert_eq!(
        value(&m, "bff_rate_limited_total", &[("policy", "tiny")]),
        2.0,
        "{text}"
    );
    assert_eq!(
        value(&m, "bff_shed_total", &[("route", PRODUCT)]),
        1.0,
        "{text}"
    );
    let req = |status: &str| {
        value(
            &m,
            "bff_http_requests_total",
            &[("route", PRODUCT), ("status", status)],
        )
    };
    assert_eq!((req("200"), req("429"), req("503")), (2.0, 2.0, 1.0));
    promtool_accepts(&text);
}

/// All three gateways: admin listener on loopback at 9081/9082/9083 by default, and their requests counted
/// by route template there (never on the public port).
#[tokio::test]
async fn every_gateway_counts_on_its_admin_listener() {
    type App = fn(BffConfig) -> Result<axum::Router, bff_core::config::ConfigError>;
    type Defaults = fn() -> BffConfig;
    let gateways: [(Defaults, App, u16, &str); 3] = [
        (bff_web::defaults, bff_web::app, 9081, "/openapi.json"),
        (bff_mobile::defaults, bff_mobile::app, 9082, "/openapi.json"),
        (
            bff_partner::defaults,
            bff_partner::app,
            9083,
            "/openapi.json",
        ),
    ];
    let mocks = mocks().await;
    for (defaults, app, admin_port, path) in gateways {
        let d = defaults();
        assert_eq!(d.admin.listen, ([127, 0, 0, 1], admin_port).into());
        assert!(d.admin.enabled);
        let gw = start(app, config_for(defaults(), &mocks)).await;
        assert_eq!(get(&format!("{}{path}", gw.url), &[]).await.status, 200);
        let (text, m) = scrape(&gw).await;
        assert_eq!(
            value(
                &m,
                "bff_http_requests_total",
                &[("route", path), ("method", "GET"), ("status", "200")]
            ),
            1.0,
            "{text}"
        );
        promtool_accepts(&text);
    }
}
