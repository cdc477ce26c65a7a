//! Hardening, round two (issue 13): one test per class of parsing and verification laxness, over real sockets
//! (raw TCP, a hand-driven HTTP/2 client), asserting behaviour — never speed. The two classes that measure
//! this process's file descriptors and RSS run alone in their own binaries: `conn_budget.rs` (class 1) and
//! `h2_bounds.rs` (class 2).

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::net::SocketAddr;
use std::time::Duration;

use bff_core::BffConfig;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mock_services::{FaultKind, FaultRule, MockStack, Service};
use raw::*;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const AUD: &str = "bff-web";
const RSA1: &[u8] = include_bytes!("../../mock-services/keys/rsa-1.pem");

/// A token signed with the identity provider's `rsa-1` key, with any header `kid` and claims.
fn forged(kid: &str, claims: serde_json::Value) -> String {
    bff_core::auth::jwt_crypto::install();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_pem(RSA1).unwrap()).unwrap()
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Class 3, keys never block: with the identity provider hanging on the JWKS (its timeout far beyond the
/// client's patience), a token with a known key verifies from the cache while the stale keys are refreshed in
/// the background, and an unknown `kid` waits only the bounded time for that refresh, then 401.
#[tokio::test]
async fn jwks_refresh_never_blocks_verification() {
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    config.auth.jwt.jwks_max_age_s = 1;
    config.auth.jwt.jwks_min_refresh_ms = 0;
    config.auth.jwt.jwks_unknown_kid_wait_ms = 200;
    config.auth.jwt.verified_cache_entries = 0;
    config.downstreams.get_mut("identity").unwrap().timeout_ms = 60_000;
    let gw = start(bff_web::app, config).await;
    let url = format!("{}/api/home", gw.url);
    let token = token(&mocks, "7", AUD, &[]).await;
    assert_eq!(get_auth(&url, &token).await.status, 200);
    let identity = mocks.handle(Service::Identity);
    identity.set_faults(vec![
        FaultRule::new(FaultKind::Hang).with_prefix("/.well-known"),
    ]);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let fetches_before = identity.route_count("GET /.well-known/jwks.json");
    // A short client timeout: a verification waiting for the hanging fetch would miss it.
    let patient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let bearer = format!("Bearer {token}");
    for _ in 0..5 {
        let r = get_with(&patient, &url, &[("authorization", &bearer)]).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let unknown = forged(
        "not-published",
        json!({"sub": "7", "aud": AUD, "iss": "bff-dev-idp", "exp": now() + 300}),
    );
    let r = get_with(
        &patient,
        &url,
        &[("authorization", &format!("Bearer {unknown}"))],
    )
    .await;
    r.assert_problem(401, "unauthenticated", &mocks);
    // The stale keys were being refreshed (the fetch hangs), not skipped.
    assert!(
        eventually(Duration::from_secs(5), || identity
            .route_count("GET /.well-known/jwks.json")
            > fetches_before)
        .await
    );
}

/// The request's budget bounds authentication: with the identity provider hanging from the start (no key
/// ever fetched) and a gateway willing to wait 5 s (the most allowed) for an unknown `kid`, a request with a 400 ms budget is
/// answered 504 `deadline_exceeded` at its deadline, not after the key wait, and the timeout is not charged to
/// the client's failed-authentication budget (the same caller is still answered 504, never 429).
#[tokio::test]
async fn deadline_bounds_authentication() {
    let mocks = mocks().await;
    let token = token(&mocks, "7", AUD, &[]).await;
    mocks.handle(Service::Identity).set_faults(vec![
        FaultRule::new(FaultKind::Hang).with_prefix("/.well-known"),
    ]);
    let mut config = config_for(bff_web::defaults(), &mocks);
    config.server.request_timeout_ms = 400;
    config.auth.jwt.jwks_unknown_kid_wait_ms = 5_000;
    config.auth.jwt.jwks_min_refresh_ms = 0;
    config.rate_limit.auth_failures.burst = 1;
    config.rate_limit.auth_failures.rate = 1;
    config.rate_limit.auth_failures.period_s = 3_600;
    config.downstreams.get_mut("identity").unwrap().timeout_ms = 60_000;
    let gw = start(bff_web::app, config).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let bearer = format!("Bearer {token}");
    for _ in 0..3 {
        let began = std::time::Instant::now();
        let r = get_with(
            &client,
            &format!("{}/api/home", gw.url),
            &[("authorization", &bearer)],
        )
        .await;
        r.assert_problem(504, "deadline_exceeded", &mocks);
        // Below the 5 s the key lookup alone would wait: the budget, not the key wait, ended it.
        assert!(
            began.elapsed() < Duration::from_secs(4),
            "{:?}",
            began.elapsed()
        );
    }
}

/// Class 4, strict tokens: `iss` as an array, an unknown `crit` header, `exp` near 2^64 and dates given as
/// floats or strings are all 401, and the same token gets the same answer every time (checked arithmetic in
/// the verified-token cache).
#[tokio::test]
async fn strict_token_claims_and_headers() {
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    // Thirty refused tokens from one address would otherwise spend its failed-authentication budget.
    config.rate_limit.auth_failures.enabled = false;
    let gw = start(bff_web::app, config).await;
    let url = format!("{}/api/home", gw.url);
    let base = json!({"sub": "7", "aud": AUD, "iss": "bff-dev-idp", "exp": now() + 300});
    let good = forged("rsa-1", base.clone());
    assert_eq!(get_auth(&url, &good).await.status, 200);
    let with = |field: &str, value: serde_json::Value| {
        let mut claims = base.clone();
        claims[field] = value;
        forged("rsa-1", claims)
    };
    let cases = [
        ("iss array", with("iss", json!(["bff-dev-idp"]))),
        ("iss number", with("iss", json!(7))),
        ("aud array of non-strings", with("aud", json!([AUD, 7]))),
        ("exp near 2^64", with("exp", json!(u64::MAX - 10))),
        ("exp past year 9999", with("exp", json!(253_402_300_800u64))),
        ("exp float", with("exp", json!((now() + 300) as f64 + 0.5))),
        ("exp string", with("exp", json!((now() + 300).to_string()))),
        ("exp negative", with("exp", json!(-1))),
        ("nbf string", with("nbf", json!("0"))),
        ("iat near 2^64", with("iat", json!(u64::MAX))),
    ];
    for (name, token) in cases {
        for attempt in 0..3 {
            let r = get_auth(&url, &token).await;
            assert_eq!(r.status, 401, "{name} (attempt {attempt}): {}", r.body);
        }
    }
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    header.crit = Some(vec!["exp-ext".into()]);
    bff_core::auth::jwt_crypto::install();
    let crit =
        jsonwebtoken::encode(&header, &base, &EncodingKey::from_rsa_pem(RSA1).unwrap()).unwrap();
    get_auth(&url, &crit)
        .await
        .assert_problem(401, "unauthenticated", &mocks);
    // An `aud` array holding this gateway's audience among strings is fine.
    let many = with("aud", json!(["other", AUD]));
    assert_eq!(get_auth(&url, &many).await.status, 200);
}

/// Class 5, strict HTTP/1 (on the three gateways): a request without Host is 400; a chunked body on a GET
/// (even with lax chunk framing) is 400 before any downstream call and the connection is closed, so the
/// request pipelined behind it is never served; a chunked request on any route closes the connection after
/// its answer; a GET body over HTTP/2 is 400 too.
#[tokio::test]
async fn strict_http1_framing() {
    let mocks = mocks().await;
    type App = fn(BffConfig) -> Result<axum::Router, bff_core::config::ConfigError>;
    let gateways: [(App, fn() -> BffConfig); 3] = [
        (bff_web::app, bff_web::defaults),
        (bff_mobile::app, bff_mobile::defaults),
        (bff_partner::app, bff_partner::defaults),
    ];
    for (app, defaults) in gateways {
        let defaults = defaults();
        let addr = serve(app, config_for(defaults, &mocks)).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = read_to_close(&mut s, Duration::from_secs(10)).await;
        let answer = answer.unwrap_or_default();
        assert_eq!(status_of(&answer), 400, "{answer}");
        assert!(answer.contains("Host header is required"), "{answer}");
        assert_no_leak(&answer, &mocks);
    }
    let (mocks, gw) = web().await;
    let addr: SocketAddr = gw.url.trim_start_matches("http://").parse().unwrap();
    let token = token(&mocks, "7", AUD, &[]).await;
    let users = mocks.handle(Service::Users);
    let before = users.received_total();

    // Lax chunk framing (whitespace after the size) with a request pipelined behind it.
    let attack = format!(
        "GET /api/home HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n\
         5 \r\nhello\r\n0\r\n\r\nGET /api/orders/701 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(attack.as_bytes()).await.unwrap();
    let answer = read_to_close(&mut s, Duration::from_secs(10))
        .await
        .expect("the connection is closed");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    assert_eq!(status_of(&answer), 400, "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"));

    // A 2 MiB chunked body on a GET route: refused before any downstream call.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "GET /api/home HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "a".repeat(64 * 1024));
    for _ in 0..32 {
        if s.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let answer = read_to_close(&mut s, Duration::from_secs(10))
        .await
        .unwrap_or_default();
    assert!(answer.is_empty() || status_of(&answer) == 400, "{answer}");
    // A declared body on a GET: 400 too (413 when over the size limit).
    let mut s = TcpStream::connect(addr).await.unwrap();
    let declared = format!(
        "GET /api/home HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 5\r\n\r\nhello"
    );
    s.write_all(declared.as_bytes()).await.unwrap();
    let answer = read_to_close(&mut s, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(status_of(&answer), 400, "{answer}");
    assert!(answer.contains("takes no request body"), "{answer}");

    // A chunked request on a route that exists for other methods: answered, then the connection closes.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .unwrap();
    let answer = read_to_close(&mut s, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");

    // HTTP/2: a GET whose HEADERS do not end the stream, followed by DATA.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.unwrap();
    let request = axum::http::Request::get(format!("http://{addr}/api/home"))
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(request, false).unwrap();
    body.send_data(bytes::Bytes::from_static(b"hello"), true)
        .unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 400);

    assert_eq!(
        users.received_total(),
        before,
        "no downstream was called for a request with a body it does not take"
    );
}

/// Class 6, config that cannot panic: a route shadowing a built-in path, one shadowing the gateway's own
/// route, a path the router would refuse, and a never-forwardable header each fail with the key named.
#[tokio::test]
async fn config_errors_name_the_key() {
    let mocks = mocks().await;
    let route = |path: &str, header: &str| {
        let mut config = config_for(bff_web::defaults(), &mocks);
        config.routes = vec![bff_core::config::RouteConfig {
            path: path.into(),
            downstream: "users".into(),
            downstream_path: "/users/7".into(),
            grpc_method: None,
            query_allow: vec![],
            header_allow: vec![header.into()],
            fields: vec![],
            scopes: vec![],
        }];
        config
    };
    let cases = [
        (route("/healthz", "accept-language"), "routes[0].path"),
        (route("/api/home", "accept-language"), "routes[0].path"),
        (
            route("/api/orders/{id}", "accept-language"),
            "routes[0].path",
        ),
        (route("/api/u/:id", "accept-language"), "routes[0].path"),
        (
            route("/api/u/{id}", "Authorization"),
            "routes[0].header_allow[0]",
        ),
        (
            route("/api/u/{id}", "x-bff-user-id"),
            "routes[0].header_allow[0]",
        ),
        (route("/api/u/{id}", "Cookie"), "routes[0].header_allow[0]"),
    ];
    for (config, key) in cases {
        let error = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| bff_web::app(config)))
            .expect("no panic")
            .expect_err("refused");
        assert!(error.to_string().contains(key), "{key}: {error}");
    }
    assert!(bff_web::app(route("/api/u/{id}", "accept-language")).is_ok());
}

/// Class 7, strict downstream content types: valid JSON served as `text/html` is a bad answer — 502 for a
/// required part, a partial response for an optional one — unless that downstream's accepted types say
/// otherwise.
#[tokio::test]
async fn downstream_content_types_are_strict() {
    async fn home(mocks: &MockStack, config: BffConfig) -> Reply {
        let gw = start(bff_web::app, uncached(config)).await;
        let token = token(mocks, "7", AUD, &[]).await;
        get_auth(&format!("{}/api/home", gw.url), &token).await
    }
    let mocks = mocks().await;
    let html = FaultRule::new(FaultKind::WrongContentType {
        content_type: "text/html".into(),
    });
    mocks
        .handle(Service::Recommendations)
        .set_faults(vec![html.clone()]);
    let r = home(&mocks, config_for(bff_web::defaults(), &mocks)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("bff-partial"), Some("recommendations"));

    let mut lenient = config_for(bff_web::defaults(), &mocks);
    lenient
        .downstreams
        .get_mut("recommendations")
        .unwrap()
        .json_content_types = vec!["application/json".into(), "text/html".into()];
    let r = home(&mocks, lenient).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("bff-partial"), None);

    mocks.handle(Service::Recommendations).clear_faults();
    mocks.handle(Service::Users).set_faults(vec![html]);
    let r = home(&mocks, config_for(bff_web::defaults(), &mocks)).await;
    r.assert_problem(502, "bad_gateway", &mocks);
}
