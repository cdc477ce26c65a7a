//! Rate limiting over real HTTP with a real Redis: exact budgets across two gateway instances sharing Redis
//! (sequential and concurrent), per-user / per-key isolation, tiers, forwarding-header spoofing, Redis killed
//! and restarted under both failure policies, the failed-authentication budget, and agreement between the
//! in-memory and Redis stores.

mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bff_core::BffConfig;
use bff_core::ratelimit::{KeyPart, OnRedisError, PolicyConfig, StoreKind};
use common::*;
use mock_services::MockStack;
use redis_server::RedisServer;

const ACME: &str = "dev-acme-key";
const GLOBEX: &str = "dev-globex-key";
const PRODUCT: &str = "/v1/products/42";

/// A limit that does not refill during a test: exactly `burst` requests are admitted.
fn fixed(name: &str, by: &[KeyPart], burst: u64) -> PolicyConfig {
    PolicyConfig::new(name, by, 1, 3_600, burst)
}

/// bff-partner on `mocks` with `policies`, in Redis when `redis` is given.
fn partner_config(
    mocks: &MockStack,
    redis: Option<&RedisServer>,
    policies: Vec<PolicyConfig>,
) -> BffConfig {
    let mut c = config_for(bff_partner::defaults(), mocks);
    c.rate_limit.policies = policies;
    if let Some(redis) = redis {
        c.rate_limit.store = StoreKind::Redis;
        c.rate_limit.redis.url = redis.url();
        c.rate_limit.redis.retry_interval_ms = 300;
        c.rate_limit.redis.timeout_ms = 500;
    }
    c
}

async fn start_partner(config: BffConfig) -> RunningGateway {
    start(bff_partner::app, config).await
}

/// GET from a chosen loopback source address (127.0.0.2, ... are distinct clients to the gateway).
async fn get_from(source: Ipv4Addr, url: &str, headers: &[(&str, &str)]) -> Reply {
    let client = reqwest::Client::builder()
        .no_proxy()
        .local_address(IpAddr::V4(source))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    get_with(&client, url, headers).await
}

fn statuses(replies: &[Reply]) -> Vec<u16> {
    replies.iter().map(|r| r.status).collect()
}

/// Two instances sharing Redis admit exactly the budget in total; refusals are 429 problems with
/// `Retry-After` and the `RateLimit` headers; every Redis key expires.
#[tokio::test]
async fn two_instances_sharing_redis_admit_exactly_the_budget() {
    let redis = RedisServer::start();
    let mocks = mocks().await;
    let policies = vec![fixed("partner", &[KeyPart::Partner], 10)];
    let a = start_partner(partner_config(&mocks, Some(&redis), policies.clone())).await;
    let b = start_partner(partner_config(&mocks, Some(&redis), policies)).await;
    let mut replies = Vec::new();
    for i in 0..30 {
        let gw = if i % 2 == 0 { &a } else { &b };
        replies.push(get(&format!("{}{PRODUCT}", gw.url), &[("x-api-key", ACME)]).await);
    }
    let ok = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 10, "statuses: {:?}", statuses(&replies));
    assert!(replies[..10].iter().all(|r| r.status == 200));
    let first = &replies[0];
    assert_eq!(
        first.header("ratelimit-policy"),
        Some("\"partner\";q=10;w=36000")
    );
    assert_eq!(first.header("ratelimit"), Some("\"partner\";r=9;t=3600"));
    assert_eq!(
        replies[9].header("ratelimit"),
        Some("\"partner\";r=0;t=36000")
    );
    let refused = &replies[10];
    refused.assert_problem(429, "rate_limited", &mocks);
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((3_590..=3_600).contains(&retry), "retry-after {retry}");
    assert_eq!(refused.header("ratelimit"), Some("\"partner\";r=0;t=36000"));
    // Public paths are not limited and carry no rate-limit headers.
    let health = get(&format!("{}/healthz", a.url), &[]).await;
    assert_eq!(health.status, 200);
    assert!(health.header("ratelimit").is_none());
    // Limiter state in Redis is bounded: every key has a TTL within the bucket's refill time.
    let mut conn = redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    for key in keys {
        assert!(key.starts_with("bff:rl:partner:"), "{key}");
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= 36_000_000, "{key} has ttl {ttl}");
    }
}

/// Under concurrent load split across both instances, at most (here: exactly) the budget is admitted.
#[tokio::test]
async fn concurrent_load_across_instances_admits_at_most_the_budget() {
    let redis = RedisServer::start();
    let mocks = mocks().await;
    let policies = vec![fixed("partner", &[KeyPart::Partner], 25)];
    let a = start_partner(partner_config(&mocks, Some(&redis), policies.clone())).await;
    let b = start_partner(partner_config(&mocks, Some(&redis), policies)).await;
    let client = client();
    let requests = (0..200).map(|i| {
        let url = format!("{}{PRODUCT}", if i % 2 == 0 { &a.url } else { &b.url });
        let client = client.clone();
        async move {
            client
                .get(url)
                .header("x-api-key", ACME)
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(requests).await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(ok, 25, "{statuses:?}");
    assert_eq!(limited, 175, "{statuses:?}");
}

/// One user's or one partner's spent budget does not touch another's.
#[tokio::test]
async fn users_and_keys_are_isolated() {
    let redis = RedisServer::start();
    let mocks = mocks().await;
    let partner = start_partner(partner_config(
        &mocks,
        Some(&redis),
        vec![fixed("partner", &[KeyPart::Partner], 3)],
    ))
    .await;
    let url = format!("{}{PRODUCT}", partner.url);
    let acme: Vec<u16> = statuses(&[
        get(&url, &[("x-api-key", ACME)]).await,
        get(&url, &[("x-api-key", ACME)]).await,
        get(&url, &[("x-api-key", ACME)]).await,
        get(&url, &[("x-api-key", ACME)]).await,
    ]);
    assert_eq!(acme, [200, 200, 200, 429]);
    assert_eq!(get(&url, &[("x-api-key", GLOBEX)]).await.status, 200);

    let mut web = config_for(bff_web::defaults(), &mocks);
    web.rate_limit.store = StoreKind::Redis;
    web.rate_limit.redis.url = redis.url();
    web.rate_limit.policies = vec![fixed("user", &[KeyPart::User], 3)];
    let web = start(bff_web::app, web).await;
    let url = format!("{}/api/products/42", web.url);
    let seven = token(&mocks, "7", "bff-web", &[]).await;
    let eight = token(&mocks, "8", "bff-web", &[]).await;
    let mut sevens = Vec::new();
    for _ in 0..4 {
        sevens.push(get_auth(&url, &seven).await.status);
    }
    assert_eq!(sevens, [200, 200, 200, 429]);
    let reply = get_auth(&url, &eight).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("ratelimit"), Some("\"user\";r=2;t=3600"));
}

/// Each partner tier gets its own limit; a tier without an entry gets the policy's base limit.
#[tokio::test]
async fn tiers_get_their_limits() {
    let redis = RedisServer::start();
    let mocks = mocks().await;
    let policy = fixed("partner", &[KeyPart::Partner], 1)
        .tier("gold", 1, 5)
        .tier("silver", 1, 3);
    let mut config = partner_config(&mocks, Some(&redis), vec![policy]);
    config.auth.api_keys.push(bff_core::config::ApiKeyConfig {
        key_sha256: bff_core::auth::hash_key("bronze-key"),
        partner_id: "initech".into(),
        tier: "bronze".into(),
        scopes: vec!["catalog:read".into()],
    });
    let gw = start_partner(config).await;
    let url = format!("{}{PRODUCT}", gw.url);
    for (key, budget) in [(ACME, 5), (GLOBEX, 3), ("bronze-key", 1)] {
        let mut admitted = 0;
        let mut first = None;
        for _ in 0..8 {
            let reply = get(&url, &[("x-api-key", key)]).await;
            if reply.status == 200 {
                admitted += 1;
            }
            first.get_or_insert(reply);
        }
        assert_eq!(admitted, budget, "{key}");
        let policy = format!("\"partner\";q={budget};w={}", budget * 3_600);
        assert_eq!(
            first.unwrap().header("ratelimit-policy"),
            Some(policy.as_str())
        );
    }
}

/// Forged forwarding headers never move a client to another bucket; behind a trusted proxy the rightmost
/// untrusted address counts, so rotating the entries left of it does not help either.
#[tokio::test]
async fn forwarding_header_spoofing_does_not_escape() {
    let mocks = mocks().await;
    // No trusted proxies: the socket peer is the client, whatever it claims.
    let gw = start_partner(partner_config(
        &mocks,
        None,
        vec![fixed("ip", &[KeyPart::Ip], 3)],
    ))
    .await;
    let url = format!("{}{PRODUCT}", gw.url);
    let mut seen = Vec::new();
    for i in 0..8 {
        let fake = format!("198.51.100.{i}");
        let forwarded = format!("for={fake}");
        seen.push(
            get(
                &url,
                &[
                    ("x-api-key", ACME),
                    ("x-forwarded-for", &fake),
                    ("forwarded", &forwarded),
                    ("x-real-ip", &fake),
                ],
            )
            .await
            .status,
        );
    }
    assert_eq!(seen, [200, 200, 200, 429, 429, 429, 429, 429]);

    // 127.0.0.1 is a trusted proxy appending the real client (198.51.100.7) to X-Forwarded-For.
    let mut config = partner_config(&mocks, None, vec![fixed("ip", &[KeyPart::Ip], 3)]);
    config.rate_limit.client_ip.trusted_proxies = vec!["127.0.0.1/32".into()];
    let gw = start_partner(config).await;
    let url = format!("{}{PRODUCT}", gw.url);
    let mut seen = Vec::new();
    for i in 0..6 {
        let chain = format!("203.0.113.{i}, 198.51.100.7");
        seen.push(
            get_from(
                Ipv4Addr::LOCALHOST,
                &url,
                &[("x-api-key", ACME), ("x-forwarded-for", &chain)],
            )
            .await
            .status,
        );
    }
    assert_eq!(seen, [200, 200, 200, 429, 429, 429]);
    // Another real client behind the same proxy has its own bucket.
    let other = get_from(
        Ipv4Addr::LOCALHOST,
        &url,
        &[("x-api-key", ACME), ("x-forwarded-for", "198.51.100.8")],
    )
    .await;
    assert_eq!(other.status, 200);
    // A peer that is not a trusted proxy (127.0.0.2) is the client itself, whatever it forwards.
    let mut seen = Vec::new();
    for i in 0..5 {
        let fake = format!("192.0.2.{i}");
        seen.push(
            get_from(
                Ipv4Addr::new(127, 0, 0, 2),
                &url,
                &[("x-api-key", ACME), ("x-forwarded-for", &fake)],
            )
            .await
            .status,
        );
    }
    assert_eq!(seen, [200, 200, 200, 429, 429]);
}

/// Redis killed mid-test with `on_error = "local"`: answers stay fast and are limited by the local limiter;
/// after Redis restarts, the shared budget across both instances holds again by itself.
#[tokio::test]
async fn redis_outage_falls_back_to_local_and_recovers() {
    let mut redis = RedisServer::start();
    let mocks = mocks().await;
    let policies = vec![fixed("partner", &[KeyPart::Partner], 4)];
    let a = start_partner(partner_config(&mocks, Some(&redis), policies.clone())).await;
    let b = start_partner(partner_config(&mocks, Some(&redis), policies)).await;
    let url_a = format!("{}{PRODUCT}", a.url);
    let url_b = format!("{}{PRODUCT}", b.url);
    assert_eq!(get(&url_a, &[("x-api-key", ACME)]).await.status, 200);
    assert_eq!(get(&url_b, &[("x-api-key", ACME)]).await.status, 200);

    redis.kill();
    let mut seen = Vec::new();
    for _ in 0..6 {
        let started = Instant::now();
        seen.push(get(&url_a, &[("x-api-key", ACME)]).await.status);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a request took {:?} with Redis down",
            started.elapsed()
        );
    }
    // A's local limiter starts full: 4 admitted, then limited.
    assert_eq!(seen, [200, 200, 200, 200, 429, 429]);

    redis.restart();
    tokio::time::sleep(Duration::from_millis(400)).await; // past retry_interval_ms = 300
    let mut seen = Vec::new();
    for i in 0..10 {
        let url = if i % 2 == 0 { &url_a } else { &url_b };
        seen.push(get(url, &[("x-api-key", ACME)]).await.status);
    }
    // Shared again: the (restarted, empty) Redis admits exactly 4 across both instances.
    assert_eq!(seen.iter().filter(|s| **s == 200).count(), 4, "{seen:?}");
    let mut conn = redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("bff:rl:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty(), "decisions are back in Redis");
}

/// Redis killed with `on_error = "deny"`: limited requests fail closed with 503 quickly; after a restart
/// they are admitted again.
#[tokio::test]
async fn redis_outage_fails_closed_when_configured() {
    let mut redis = RedisServer::start();
    let mocks = mocks().await;
    let mut config = partner_config(
        &mocks,
        Some(&redis),
        vec![fixed("partner", &[KeyPart::Partner], 100)],
    );
    config.rate_limit.redis.on_error = OnRedisError::Deny;
    let gw = start_partner(config).await;
    let url = format!("{}{PRODUCT}", gw.url);
    assert_eq!(get(&url, &[("x-api-key", ACME)]).await.status, 200);

    redis.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let reply = get(&url, &[("x-api-key", ACME)]).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        reply.assert_problem(503, "rate_limiter_unavailable", &mocks);
        assert_eq!(reply.header("retry-after"), Some("1"));
        assert!(
            !reply.body.to_lowercase().contains("redis"),
            "{}",
            reply.body
        );
    }

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = get(&url, &[("x-api-key", ACME)]).await.status;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(
            Instant::now() < deadline,
            "never recovered after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Failed authentication attempts are limited per client address across instances; once the budget is
/// spent even a valid key from that address is refused (guessing learns nothing), other addresses are not.
#[tokio::test]
async fn failed_authentication_is_limited_per_ip() {
    let redis = RedisServer::start();
    let mocks = mocks().await;
    let config = || {
        let mut c = partner_config(&mocks, Some(&redis), vec![]);
        c.rate_limit.auth_failures.rate = 1;
        c.rate_limit.auth_failures.period_s = 3_600;
        c.rate_limit.auth_failures.burst = 4;
        c
    };
    let a = start_partner(config()).await;
    let b = start_partner(config()).await;
    let mut seen = Vec::new();
    for i in 0..6 {
        let gw = if i % 2 == 0 { &a } else { &b };
        let guess = format!("guess-{i}");
        seen.push(
            get(&format!("{}{PRODUCT}", gw.url), &[("x-api-key", &guess)])
                .await
                .status,
        );
    }
    assert_eq!(seen, [401, 401, 401, 401, 429, 429]);
    let refused = get(&format!("{}{PRODUCT}", a.url), &[("x-api-key", ACME)]).await;
    refused.assert_problem(429, "rate_limited", &mocks);
    assert!(refused.header("retry-after").is_some());
    let other = get_from(
        Ipv4Addr::new(127, 0, 0, 2),
        &format!("{}{PRODUCT}", b.url),
        &[("x-api-key", ACME)],
    )
    .await;
    assert_eq!(other.status, 200);
}

/// The in-memory and the Redis store give the same answers (statuses and `RateLimit` headers) to the same
/// sequence of requests, including refills over time.
#[tokio::test]
async fn memory_and_redis_stores_agree() {
    let redis = RedisServer::start();
    let mocks = mocks().await;
    let policies = vec![
        fixed("partner", &[KeyPart::Partner], 4)
            .tier("gold", 1, 6)
            .on_routes(&["/v1/products/{id}", "/v1/products", "/v1/orders/**"]),
        fixed("orders", &[KeyPart::Partner, KeyPart::Route], 2).on_routes(&["/v1/orders/{id}"]),
        PolicyConfig::new("steady", &[KeyPart::Ip], 1, 1, 2)
            .on_routes(&["/v1/products/*/availability"]),
    ];
    let memory = start_partner(partner_config(&mocks, None, policies.clone())).await;
    let shared = start_partner(partner_config(&mocks, Some(&redis), policies)).await;
    let steps: Vec<(&str, &str)> = vec![
        (ACME, "/v1/products/1"),
        (ACME, "/v1/orders/701"),
        (GLOBEX, "/v1/products/2"),
        (ACME, "/v1/orders/704"),
        (ACME, "/v1/orders/707"),
        (GLOBEX, "/v1/products?ids=1,2"),
        (ACME, "/v1/products/3"),
        (GLOBEX, "/v1/products/4"),
        (GLOBEX, "/v1/products/5"),
        (ACME, "/v1/products/6"),
        (ACME, "/v1/products/7"),
        (GLOBEX, "/v1/orders/702"),
        ("wrong-key", "/v1/products/1"),
        (ACME, "/v1/products/8"),
    ];
    let answer = |reply: &Reply| {
        (
            reply.status,
            reply.header("ratelimit-policy").map(str::to_owned),
            reply.header("ratelimit").map(str::to_owned),
            reply.header("retry-after").map(str::to_owned),
        )
    };
    let mut both = Vec::new();
    for (key, path) in &steps {
        let m = get(&format!("{}{path}", memory.url), &[("x-api-key", key)]).await;
        let r = get(&format!("{}{path}", shared.url), &[("x-api-key", key)]).await;
        assert_eq!(answer(&m), answer(&r), "{key} {path}");
        both.push(m.status);
    }
    assert!(both.contains(&429) && both.contains(&200), "{both:?}");
    // A refilling policy (1/s, burst 2): two admitted, one refused; 1.5 s later one more admitted.
    let path = "/v1/products/9/availability";
    let mut timeline = Vec::new();
    for pause in [0, 0, 0, 1_500, 0] {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let m = get(&format!("{}{path}", memory.url), &[("x-api-key", ACME)]).await;
        let r = get(&format!("{}{path}", shared.url), &[("x-api-key", ACME)]).await;
        assert_eq!(m.status, r.status, "pause {pause}");
        timeline.push(m.status);
    }
    assert_eq!(timeline, [200, 200, 429, 200, 429]);
}

/// Not a test but a rough, bounded loopback measurement of what the limiter costs (run by hand:
/// `cargo test --release -p tests --test ratelimit -- --ignored --nocapture store_cost`). 32 concurrent
/// clients for 3 s per mode against an unknown route (edge + auth + limiter + 404, no downstream call), so
/// the limiter's share is as visible as it gets; everything shares this machine's cores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, prints figures; run by hand"]
async fn store_cost_loopback_measurement() {
    let redis = RedisServer::start();
    let mocks = mocks().await;
    let policy = || {
        vec![PolicyConfig::new(
            "partner",
            &[KeyPart::Partner],
            1_000_000,
            1,
            1_000_000,
        )]
    };
    let mut off = partner_config(&mocks, None, vec![]);
    off.rate_limit.enabled = false;
    let modes = [
        ("limiter off", off),
        ("memory store", partner_config(&mocks, None, policy())),
        (
            "redis store",
            partner_config(&mocks, Some(&redis), policy()),
        ),
    ];
    for (name, config) in modes {
        let gw = start_partner(config).await;
        let url = format!("{}/v1/nope", gw.url);
        let client = client();
        let until = Instant::now() + Duration::from_secs(3);
        let workers = (0..32).map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < until {
                    let r = client
                        .get(&url)
                        .header("x-api-key", ACME)
                        .send()
                        .await
                        .expect("request");
                    assert_eq!(r.status(), 404);
                    let _ = r.bytes().await;
                    n += 1;
                }
                n
            })
        });
        let total: u64 = futures::future::join_all(workers)
            .await
            .into_iter()
            .map(|r| r.expect("worker"))
            .sum();
        let rps = total as f64 / 3.0;
        println!(
            "{name:>13}: {rps:>8.0} req/s, mean latency {:.3} ms (32 concurrent)",
            32_000.0 / rps
        );
        gw.shutdown().await;
    }
}
