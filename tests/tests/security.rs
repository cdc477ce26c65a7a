//! The security suite: attacks on running gateways over real sockets (raw TCP where the HTTP client would
//! refuse to send the attack). Each test says what it proves, checks the status, that the downstream was not
//! called where it must not be, and that nothing internal leaks.

mod common;

use std::time::{Duration, Instant};

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mock_services::{FaultKind, FaultRule, Service};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const AUD: &str = "bff-web";

/// Sends raw bytes on a fresh connection and reads until the server closes or `wait` passes.
async fn raw(url: &str, request: &[u8], wait: Duration) -> String {
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        match tokio::time::timeout(deadline - Instant::now(), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A token signed with one of the identity provider's own (dev) keys but with arbitrary claims and header.
fn forged(header: Header, claims: serde_json::Value, pem: &[u8], ec: bool) -> String {
    bff_core::auth::jwt_crypto::install();
    let key = if ec {
        EncodingKey::from_ec_pem(pem)
    } else {
        EncodingKey::from_rsa_pem(pem)
    }
    .unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn rsa1_header() -> Header {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("rsa-1".into());
    h
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

const RSA1: &[u8] = include_bytes!("../../mock-services/keys/rsa-1.pem");
const EC1: &[u8] = include_bytes!("../../mock-services/keys/ec-1.pem");

/// Content-Length together with Transfer-Encoding (the CL.TE smuggling setup) is refused and nothing is routed.
#[tokio::test]
async fn cl_te_conflict_is_refused() {
    let (mocks, gw) = web().await;
    let attack = b"POST /api/home HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/home HTTP/1.1\r\nHost: x\r\n\r\n";
    let response = raw(&gw.url, attack, Duration::from_secs(2)).await;
    assert!(
        matches!(status_of(&response), 400 | 401 | 405 | 0),
        "{response}"
    );
    assert!(!response.contains(" 200 "), "{response}");
    assert_eq!(mocks.handle(Service::Users).received_total(), 0);
}

/// Two different Content-Length headers are refused.
#[tokio::test]
async fn duplicate_content_length_is_refused() {
    let (mocks, gw) = web().await;
    let attack =
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello";
    let response = raw(&gw.url, attack, Duration::from_secs(2)).await;
    assert_eq!(status_of(&response), 400, "{response}");
    assert_no_leak(&response, &mocks);
}

/// Pipelined requests are each authenticated on their own: a valid first request does not authorise the second.
#[tokio::test]
async fn pipelined_requests_are_authenticated_one_by_one() {
    let (mocks, gw) = web().await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let attack = format!(
        "GET /api/home HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\nGET /api/orders/701 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let response = raw(&gw.url, attack.as_bytes(), Duration::from_secs(5)).await;
    let statuses: Vec<u16> = response
        .match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| response[i + 9..i + 12].parse().ok())
        .collect();
    assert_eq!(statuses, vec![200, 401], "{response}");
    assert_eq!(
        mocks
            .handle(Service::Orders)
            .route_count("GET /orders/{id}"),
        0
    );
}

/// Too many headers, or headers too large, are refused with 431 before any routing.
#[tokio::test]
async fn oversized_headers_are_431() {
    let (mocks, gw) = web().await;
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    let response = raw(
        &gw.url,
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(status_of(&response), 431, "{response}");
    let big = "a".repeat(20 * 1024);
    let response = raw(
        &gw.url,
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes(),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(status_of(&response), 431, "{response}");
    let huge_token = format!("Bearer {}", "a".repeat(12 * 1024));
    let r = get(
        &format!("{}/api/home", gw.url),
        &[("authorization", &huge_token)],
    )
    .await;
    assert!(r.status == 401 || r.status == 431, "{}", r.status);
    assert_eq!(mocks.handle(Service::Users).received_total(), 0);
}

/// An overlong request target is 414 problem+json.
#[tokio::test]
async fn long_uri_is_414() {
    let (mocks, gw) = web().await;
    let r = get(
        &format!("{}/api/products?q={}", gw.url, "a".repeat(9000)),
        &[],
    )
    .await;
    r.assert_problem(414, "uri_too_long", &mocks);
}

/// A declared body over the limit is refused before it is read.
#[tokio::test]
async fn declared_oversized_body_is_413() {
    let (mocks, gw) = web().await;
    let response = raw(
        &gw.url,
        b"GET /api/home HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(status_of(&response), 413, "{response}");
    assert!(response.contains("payload_too_large"));
    assert_eq!(mocks.handle(Service::Users).received_total(), 0);
}

/// A client that sends its headers slowly is disconnected after the header read timeout.
#[tokio::test]
async fn slow_header_client_is_cut_off() {
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    config.server.limits.header_read_timeout_ms = 300;
    let router = bff_web::app(config.clone()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = config.server.limits.clone();
    tokio::spawn(async move {
        bff_core::server::serve_with_limits(
            listener,
            router,
            std::future::pending(),
            Duration::from_secs(1),
            &limits,
        )
        .await
    });
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let result = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(result.is_ok(), "connection held open past 5 s");
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
}

/// TRACE and CONNECT are refused; CONNECT does not open a tunnel.
#[tokio::test]
async fn trace_and_connect_are_refused() {
    let (mocks, gw) = web().await;
    let response = raw(
        &gw.url,
        b"TRACE /api/home HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(status_of(&response), 405, "{response}");
    let response = raw(
        &gw.url,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert!(status_of(&response) >= 400, "{response}");
    assert_eq!(mocks.handles().map(|h| h.received_total()).sum::<u64>(), 0);
}

/// An absolute-form request is routed by its path on this gateway only; the gateway is no open proxy, and the
/// client's Host is never reflected.
#[tokio::test]
async fn absolute_form_is_no_open_proxy_and_host_is_not_reflected() {
    let (mocks, gw) = web().await;
    let response = raw(
        &gw.url,
        b"GET http://evil.example/healthz HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(status_of(&response), 200, "{response}");
    assert!(
        response.contains("\"status\":\"ok\""),
        "served locally: {response}"
    );
    assert!(!response.contains("evil.example"), "{response}");
    let r = get(&format!("{}/nope", gw.url), &[("host", "evil.example")]).await;
    assert!(!r.body.contains("evil") && !format!("{:?}", r.headers).contains("evil"));
    assert_eq!(mocks.handles().map(|h| h.received_total()).sum::<u64>(), 0);
}

/// `Connection: <identity header>, authorization` cannot make the gateway drop what it sets downstream.
#[tokio::test]
async fn hop_by_hop_abuse_cannot_strip_identity() {
    let (mocks, gw) = web().await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let request = format!(
        "GET /api/home HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: keep-alive, x-bff-user-id, authorization, x-request-id\r\nX-Bff-User-Id: 1\r\n\r\n"
    );
    let response = raw(&gw.url, request.as_bytes(), Duration::from_secs(3)).await;
    assert_eq!(status_of(&response), 200, "{response}");
    let users = mocks.handle(Service::Users);
    assert_eq!(users.last_header("x-bff-user-id").as_deref(), Some("7"));
    assert!(users.last_header("x-request-id").is_some());
    if let Some(connection) = users.last_header("connection") {
        assert!(
            !connection.contains("x-bff") && !connection.contains("authorization"),
            "{connection}"
        );
    }
}

/// Tokens are never accepted in the URL.
#[tokio::test]
async fn token_in_query_is_refused() {
    let (mocks, gw) = web().await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let r = get(
        &format!("{}/api/home?access_token={token}", gw.url),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    r.assert_problem(401, "unauthenticated", &mocks);
    assert_eq!(mocks.handle(Service::Users).received_total(), 0);
}

/// HS256 signed with the identity provider's public key (key confusion) is refused.
#[tokio::test]
async fn hs256_key_confusion_is_refused() {
    let (mocks, gw) = web().await;
    let public = include_bytes!("../fixtures/idp-rsa-1.pub.pem");
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let claims = json!({"sub": "1", "aud": AUD, "iss": "bff-dev-idp", "exp": now() + 300});
    bff_core::auth::jwt_crypto::install();
    let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(public)).unwrap();
    get_auth(&format!("{}/api/home", gw.url), &token)
        .await
        .assert_problem(401, "unauthenticated", &mocks);
    assert_eq!(mocks.handle(Service::Users).received_total(), 0);
}

/// Keys carried by the token itself (`jku`, `jwk`, `x5u`) are never fetched nor trusted.
#[tokio::test]
async fn embedded_keys_are_refused() {
    let (mocks, gw) = web().await;
    let claims = json!({"sub": "1", "aud": AUD, "iss": "bff-dev-idp", "exp": now() + 300});
    let mut jku = rsa1_header();
    jku.jku = Some(format!(
        "{}/.well-known/jwks.json",
        mocks.url(Service::Identity)
    ));
    let mut x5u = rsa1_header();
    x5u.x5u = Some("http://127.0.0.1:1/cert.pem".into());
    for header in [jku, x5u] {
        let token = forged(header, claims.clone(), RSA1, false);
        get_auth(&format!("{}/api/home", gw.url), &token)
            .await
            .assert_problem(401, "unauthenticated", &mocks);
    }
    assert_eq!(
        mocks.handle(Service::Identity).received_total(),
        0,
        "nothing fetched for such tokens"
    );
}

/// Unknown, huge, path- or SQL-shaped `kid`s are refused without a JWKS fetch storm.
#[tokio::test]
async fn hostile_kids_cause_no_fetch_storm() {
    let (mocks, gw) = web().await;
    let claims = json!({"sub": "1", "aud": AUD, "iss": "bff-dev-idp", "exp": now() + 300});
    let kids: Vec<String> = (0..20)
        .map(|i| format!("k{i}"))
        .chain([
            "../../etc/passwd".into(),
            "' OR 1=1 --".into(),
            "x".repeat(4000),
            "%00".into(),
        ])
        .collect();
    for kid in kids {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid);
        let token = forged(header, claims.clone(), RSA1, false);
        get_auth(&format!("{}/api/home", gw.url), &token)
            .await
            .assert_problem(401, "unauthenticated", &mocks);
    }
    let fetches = mocks
        .handle(Service::Identity)
        .route_count("GET /.well-known/jwks.json");
    assert!(fetches <= 3, "{fetches} JWKS fetches for 24 hostile tokens");
}

/// Claims of the wrong JSON type, future `iat`, and ECDSA signatures of zeros are refused.
#[tokio::test]
async fn malformed_claims_and_zero_signatures_are_refused() {
    let (mocks, gw) = web().await;
    let url = format!("{}/api/home", gw.url);
    let base = json!({"sub": "7", "aud": AUD, "iss": "bff-dev-idp", "exp": now() + 300});
    let ok = forged(rsa1_header(), base.clone(), RSA1, false);
    assert_eq!(
        get_auth(&url, &ok).await.status,
        200,
        "the forging itself is sound"
    );
    let mut string_exp = base.clone();
    string_exp["exp"] = json!((now() + 300).to_string());
    let mut future_iat = base.clone();
    future_iat["iat"] = json!(now() + 3600);
    let mut numeric_sub = base.clone();
    numeric_sub["sub"] = json!(7);
    for claims in [string_exp, future_iat, numeric_sub] {
        let token = forged(rsa1_header(), claims.clone(), RSA1, false);
        get_auth(&url, &token)
            .await
            .assert_problem(401, "unauthenticated", &mocks);
    }
    let mut es = Header::new(Algorithm::ES256);
    es.kid = Some("ec-1".into());
    let valid_es = forged(es, base, EC1, true);
    assert_eq!(get_auth(&url, &valid_es).await.status, 200);
    let (head, _) = valid_es.rsplit_once('.').unwrap();
    let zero_sig = format!("{head}.{}", "A".repeat(86));
    get_auth(&url, &zero_sig)
        .await
        .assert_problem(401, "unauthenticated", &mocks);
}

/// A downstream redirect is not followed and its location never reaches the client.
#[tokio::test]
async fn downstream_redirects_are_not_followed() {
    let (mocks, gw) = web().await;
    let token = token(&mocks, "7", AUD, &[]).await;
    mocks
        .handle(Service::Users)
        .set_faults(vec![FaultRule::new(FaultKind::Error { status: 302 })]);
    let r = get_auth(&format!("{}/api/home", gw.url), &token).await;
    r.assert_problem(502, "bad_gateway", &mocks);
    assert!(r.header("location").is_none());
}

/// Every response carries the standard security headers and no `server` header.
#[tokio::test]
async fn security_headers_on_every_response() {
    let (mocks, gw) = web().await;
    let token = token(&mocks, "7", AUD, &[]).await;
    for r in [
        get(&format!("{}/api/home", gw.url), &[]).await,
        get_auth(&format!("{}/api/home", gw.url), &token).await,
    ] {
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert!(r.header("content-security-policy").is_some());
        assert!(r.header("server").is_none());
    }
}

/// CORS: preflights from an allowed origin are answered before authentication; other origins get no grant.
#[tokio::test]
async fn cors_exact_origins_only() {
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    config.cors.allowed_origins = vec!["https://app.example.com".into()];
    let gw = start(bff_web::app, config).await;
    let preflight = |origin: &'static str| {
        client()
            .request(reqwest::Method::OPTIONS, format!("{}/api/home", gw.url))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let ok = preflight("https://app.example.com").await.unwrap();
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let evil = preflight("https://evil.example.com").await.unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    let r = get(
        &format!("{}/api/home", gw.url),
        &[("origin", "https://evil.example.com")],
    )
    .await;
    assert!(r.header("access-control-allow-origin").is_none());
    assert_eq!(r.status, 401);
}

/// When the identity provider is down, tokens signed with cached keys are still accepted.
#[tokio::test]
async fn cached_keys_survive_an_identity_provider_outage() {
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    // Always stale: every request tries a refresh, which fails while the IdP is down.
    config.auth.jwt.jwks_max_age_s = 0;
    config.auth.jwt.jwks_min_refresh_ms = 0;
    let gw = start(bff_web::app, config).await;
    let token = token(&mocks, "7", AUD, &[]).await;
    let url = format!("{}/api/home", gw.url);
    assert_eq!(get_auth(&url, &token).await.status, 200);
    mocks
        .handle(Service::Identity)
        .set_faults(vec![FaultRule::new(FaultKind::Error { status: 503 })]);
    assert_eq!(
        get_auth(&url, &token).await.status,
        200,
        "cached key used while the IdP fails"
    );
    mocks
        .handle(Service::Identity)
        .set_faults(vec![FaultRule::new(FaultKind::Reset)]);
    assert_eq!(
        get_auth(&url, &token).await.status,
        200,
        "cached key used while the IdP resets"
    );
}

/// An `Upgrade` request is answered as plain HTTP: no protocol switch, no tunnel to smuggle through.
#[tokio::test]
async fn upgrade_requests_are_not_switched() {
    let (mocks, gw) = web().await;
    let response = raw(
        &gw.url,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert!(!response.contains(" 101 "), "{response}");
    assert_eq!(status_of(&response), 200, "{response}");
    let websocket = get(
        &format!("{}/api/home", gw.url),
        &[
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
    )
    .await;
    assert_eq!(websocket.status, 401);
    assert_eq!(mocks.handle(Service::Users).received_total(), 0);
}

/// A remembered (already verified) token is still refused once it expires.
#[tokio::test]
async fn verified_token_cache_honours_expiry() {
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    config.auth.jwt.leeway_s = 0;
    let gw = start(bff_web::app, config).await;
    let token = mint(&mocks, json!({"sub": "7", "aud": AUD, "ttl_s": 1})).await;
    let url = format!("{}/api/home", gw.url);
    assert_eq!(get_auth(&url, &token).await.status, 200);
    assert_eq!(
        get_auth(&url, &token).await.status,
        200,
        "served from the cache"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    get_auth(&url, &token)
        .await
        .assert_problem(401, "unauthenticated", &mocks);
}
