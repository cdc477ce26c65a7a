//! TLS everywhere, over real rustls listeners with certificates generated here (never committed keys): HTTPS
//! and mTLS downstreams, the JWKS over HTTPS and by OpenID discovery, HTTP/2 to downstreams, TLS and mTLS at
//! the edge (HTTP/1.1 and HTTP/2 clients), partner authentication by client certificate, certificate
//! rotation, and every failure of the issue's list.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bff_core::BffConfig;
use bff_core::config::{AuthMode, ClientCertConfig, RouteConfig};
use bff_core::downstream::{HttpClient, tls_client};
use bff_core::tls::{ClientAuth, DownstreamTlsConfig, Http2Mode, ServerTlsConfig};
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use mock_services::certs::{CertSpec, Issued, TestCa, date_time_ymd};
use mock_services::{IdpConfig, MockStack, Service, ServiceConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A private temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "bff-tls-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CA, a server certificate for 127.0.0.1 signed by it, and the CA written to `ca.pem`.
struct Pki {
    dir: TempDir,
    ca: TestCa,
    ca_file: PathBuf,
    server: Issued,
}

impl Pki {
    fn new() -> Self {
        let dir = TempDir::new();
        let ca = TestCa::new("bff test CA").expect("CA");
        let ca_file = dir.file("ca.pem", &ca.cert_pem());
        let server = ca.issue(&CertSpec::server()).expect("server cert");
        Self {
            dir,
            ca,
            ca_file,
            server,
        }
    }

    /// A client certificate (CN `cn`, SANs `sans`) written to `<stem>.crt` / `<stem>.key`.
    fn client(&self, stem: &str, cn: &str, sans: &[&str]) -> (PathBuf, PathBuf) {
        self.ca
            .issue(&CertSpec::client(cn, sans))
            .expect("client cert")
            .write(&self.dir.0, stem)
            .expect("write client cert")
    }

    fn trust(&self) -> DownstreamTlsConfig {
        DownstreamTlsConfig {
            ca_file: Some(self.ca_file.clone()),
            ..Default::default()
        }
    }
}

/// The seven mock services over HTTPS with `server`'s certificate (requiring client certificates of
/// `client_ca` when given).
async fn tls_mocks(server: &Issued, client_ca: Option<&str>) -> MockStack {
    let config = ServiceConfig {
        tls: Some(server.mock_tls(client_ca)),
        ..Default::default()
    };
    mock_services::spawn_many(Service::ALL.map(|s| {
        (
            s,
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            config.clone(),
        )
    }))
    .await
    .expect("TLS mocks start")
}

/// `defaults` pointed at `mocks`, every downstream trusting `tls`.
fn tls_config(defaults: BffConfig, mocks: &MockStack, tls: &DownstreamTlsConfig) -> BffConfig {
    let mut config = config_for(defaults, mocks);
    for d in config.downstreams.values_mut() {
        d.tls = tls.clone();
    }
    config
}

/// An HTTPS client of the tests themselves (the gateway's own client type), trusting `ca_file`.
fn https(ca_file: &Path, client_cert: Option<&(PathBuf, PathBuf)>, http2: Http2Mode) -> HttpClient {
    let tls = DownstreamTlsConfig {
        ca_file: Some(ca_file.to_owned()),
        cert_file: client_cert.map(|c| c.0.clone()),
        key_file: client_cert.map(|c| c.1.clone()),
        reload_interval_ms: Some(0),
    };
    tls_client(Duration::from_secs(5), "test", &tls, http2).expect("test client")
}

/// An answer read whole.
struct Answer {
    status: u16,
    version: hyper::Version,
    headers: hyper::HeaderMap,
    body: String,
}

async fn send(
    client: &HttpClient,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Answer, String> {
    let mut request = hyper::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(Duration::from_secs(20), client.request(request))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| format!("{e:?}"))?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Answer {
        status: parts.status.as_u16(),
        version: parts.version,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

async fn https_get(client: &HttpClient, url: &str, headers: &[(&str, &str)]) -> Answer {
    send(client, "GET", url, headers, "")
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// A token minted over HTTPS at the identity mock.
async fn mint_tls(client: &HttpClient, mocks: &MockStack, sub: &str, aud: &str) -> String {
    let body = serde_json::json!({"sub": sub, "aud": aud, "scopes": ["orders:read"]}).to_string();
    let answer = send(
        client,
        "POST",
        &format!("{}/token", mocks.url(Service::Identity)),
        &[("content-type", "application/json")],
        &body,
    )
    .await
    .expect("token over HTTPS");
    assert_eq!(answer.status, 200, "{}", answer.body);
    let json: serde_json::Value = serde_json::from_str(&answer.body).expect("token JSON");
    json["access_token"].as_str().expect("token").to_owned()
}

/// The three gateways compose over HTTPS downstreams; the JWKS is fetched over HTTPS; the platform roots
/// plus `ca_file` verify the mocks' certificates.
#[tokio::test]
async fn gateways_compose_over_https_downstreams() {
    let pki = Pki::new();
    let mocks = tls_mocks(&pki.server, None).await;
    assert!(mocks.url(Service::Users).starts_with("https://"));
    let client = https(&pki.ca_file, None, Http2Mode::Auto);

    let web = start(
        bff_web::app,
        tls_config(bff_web::defaults(), &mocks, &pki.trust()),
    )
    .await;
    let token = mint_tls(&client, &mocks, "7", "bff-web").await;
    let r = get_auth(&format!("{}/api/home", web.url), &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        mocks
            .handle(Service::Identity)
            .route_count("GET /.well-known/jwks.json")
            >= 1,
        "JWKS fetched over HTTPS"
    );
    assert!(mocks.handle(Service::Users).route_count("GET /users/{id}") >= 1);

    let mobile = start(
        bff_mobile::app,
        tls_config(bff_mobile::defaults(), &mocks, &pki.trust()),
    )
    .await;
    let token = mint_tls(&client, &mocks, "7", "bff-mobile").await;
    let r = get_auth(&format!("{}/api/home", mobile.url), &token).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let partner = start(
        bff_partner::app,
        tls_config(bff_partner::defaults(), &mocks, &pki.trust()),
    )
    .await;
    let r = get(
        &format!("{}/v1/products/12", partner.url),
        &[("x-api-key", "dev-acme-key")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["id"], "12");
}

fn route(path: &str, downstream: &str, downstream_path: &str) -> RouteConfig {
    RouteConfig {
        path: path.into(),
        downstream: downstream.into(),
        downstream_path: downstream_path.into(),
        grpc_method: None,
        query_allow: vec![],
        header_allow: vec![],
        fields: vec![],
        scopes: vec![],
    }
}

/// bff-web without authentication on the plain `mocks`, plus a downstream `tlsd` at `url` with `tls` and
/// `http2` behind `/x/users/{id}` (and `/ok/users/{id}` on the healthy users mock).
async fn gateway_with(
    mocks: &MockStack,
    url: &str,
    tls: DownstreamTlsConfig,
    http2: Http2Mode,
) -> RunningGateway {
    let mut config = uncached(config_for(bff_web::defaults(), mocks));
    config.auth.mode = AuthMode::None;
    let mut d = bff_core::config::DownstreamConfig::at(url);
    d.tls = tls;
    d.http2 = http2;
    d.cache.enabled = false;
    config.downstreams.insert("tlsd".into(), d);
    config
        .routes
        .push(route("/x/users/{id}", "tlsd", "/users/{id}"));
    config
        .routes
        .push(route("/ok/users/{id}", "users", "/users/{id}"));
    start(bff_web::app, config).await
}

/// One users mock over HTTPS with `tls`.
async fn users_over(tls: mock_services::MockTls) -> mock_services::MockHandle {
    mock_services::spawn(
        Service::Users,
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        ServiceConfig {
            tls: Some(tls),
            ..Default::default()
        },
    )
    .await
    .expect("users over TLS")
}

/// Asserts the failing route answers the downstream problem (503, or 502 for a failure after the
/// handshake) without naming the downstream, and that the healthy route still answers.
async fn assert_fails_cleanly(gw: &RunningGateway, mocks: &MockStack, downstream_port: u16) {
    let r = get(&format!("{}/x/users/1", gw.url), &[]).await;
    let code = if r.status == 502 {
        "bad_gateway"
    } else {
        "downstream_unavailable"
    };
    r.assert_problem(if r.status == 502 { 502 } else { 503 }, code, mocks);
    for needle in [
        downstream_port.to_string().as_str(),
        "tls",
        "certificate",
        "rustls",
    ] {
        assert!(
            !r.body.to_lowercase().contains(needle),
            "leaks `{needle}`: {}",
            r.body
        );
    }
    let ok = get(&format!("{}/ok/users/1", gw.url), &[]).await;
    assert_eq!(ok.status, 200, "everyone else is still served: {}", ok.body);
}

/// Expired, not-yet-valid, wrong-hostname, self-signed and untrusted-CA downstream certificates are all
/// refused: 503 problem, nothing internal, other routes unaffected. The same CA-issued valid certificate
/// works (so the refusals are about the certificate, not the set-up).
#[tokio::test]
async fn bad_downstream_certificates_are_refused() {
    let pki = Pki::new();
    let mocks = mocks().await;
    let other_ca = TestCa::new("some other CA").expect("CA");
    let cases: Vec<(&str, Issued)> = vec![
        (
            "expired",
            pki.ca
                .issue(&CertSpec {
                    not_before: date_time_ymd(2000, 1, 1),
                    not_after: date_time_ymd(2001, 1, 1),
                    ..CertSpec::server()
                })
                .unwrap(),
        ),
        (
            "not yet valid",
            pki.ca
                .issue(&CertSpec {
                    not_before: date_time_ymd(2990, 1, 1),
                    ..CertSpec::server()
                })
                .unwrap(),
        ),
        (
            "wrong hostname",
            pki.ca
                .issue(&CertSpec {
                    common_name: "other.example".into(),
                    alt_names: vec!["other.example".into()],
                    ..CertSpec::server()
                })
                .unwrap(),
        ),
        ("self-signed", CertSpec::server().self_signed().unwrap()),
        ("untrusted CA", other_ca.issue(&CertSpec::server()).unwrap()),
    ];
    for (what, cert) in cases {
        let users = users_over(cert.mock_tls(None)).await;
        let gw = gateway_with(&mocks, &users.url(), pki.trust(), Http2Mode::Auto).await;
        eprintln!("case: {what}");
        assert_fails_cleanly(&gw, &mocks, users.addr().port()).await;
        assert_eq!(users.received_total(), 0, "{what}: no request reached it");
        gw.shutdown().await;
        users.shutdown().await;
    }
    let good = users_over(pki.server.mock_tls(None)).await;
    let gw = gateway_with(&mocks, &good.url(), pki.trust(), Http2Mode::Auto).await;
    let r = get(&format!("{}/x/users/1", gw.url), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// A plain-HTTP answer on an `https://` URL, and a TLS port that resets mid-handshake: 503, cleanly.
#[tokio::test]
async fn plain_http_and_reset_handshakes_fail_cleanly() {
    let pki = Pki::new();
    let mocks = mocks().await;
    let plain = mocks.handle(Service::Users).addr();
    let gw = gateway_with(
        &mocks,
        &format!("https://{plain}"),
        pki.trust(),
        Http2Mode::Auto,
    )
    .await;
    assert_fails_cleanly(&gw, &mocks, plain.port()).await;

    // Accepts, reads the ClientHello, then resets the connection.
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let reset_addr = listener.local_addr().unwrap();
    let resets = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 64];
            let _ = stream.read(&mut buf).await;
            let _ = stream.set_zero_linger();
            drop(stream);
        }
    });
    let gw = gateway_with(
        &mocks,
        &format!("https://{reset_addr}"),
        pki.trust(),
        Http2Mode::Auto,
    )
    .await;
    assert_fails_cleanly(&gw, &mocks, reset_addr.port()).await;
    resets.abort();
}

/// mTLS to a downstream: with the configured client certificate the call succeeds; a gateway without one
/// fails cleanly (the downstream refuses the handshake), and keeps serving everyone else.
#[tokio::test]
async fn downstream_mtls_with_and_without_client_certificate() {
    let pki = Pki::new();
    let mocks = mocks().await;
    let users = users_over(pki.server.mock_tls(Some(&pki.ca.cert_pem()))).await;
    let (cert, key) = pki.client("gateway", "bff-web-gateway", &[]);
    let with_cert = DownstreamTlsConfig {
        cert_file: Some(cert),
        key_file: Some(key),
        ..pki.trust()
    };
    let gw = gateway_with(&mocks, &users.url(), with_cert, Http2Mode::Auto).await;
    let r = get(&format!("{}/x/users/3", gw.url), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["id"], "3");
    let without = gateway_with(&mocks, &users.url(), pki.trust(), Http2Mode::Auto).await;
    assert_fails_cleanly(&without, &mocks, users.addr().port()).await;
}

/// HTTP/2 to downstreams: `auto` negotiates h2 by ALPN over TLS, `never` stays on HTTP/1.1, `always` on a
/// plain `http://` URL speaks h2c with prior knowledge.
#[tokio::test]
async fn http2_modes_to_downstreams() {
    let pki = Pki::new();
    let mocks = mocks().await;
    let users = users_over(pki.server.mock_tls(None)).await;
    let version = |h: &mock_services::MockHandle| h.received().last.map(|l| l.version);
    for (mode, expected) in [
        (Http2Mode::Auto, "HTTP/2.0"),
        (Http2Mode::Never, "HTTP/1.1"),
    ] {
        let gw = gateway_with(&mocks, &users.url(), pki.trust(), mode).await;
        let r = get(&format!("{}/x/users/1", gw.url), &[]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(version(&users).as_deref(), Some(expected), "{mode:?}");
    }
    let plain = mocks.url(Service::Users);
    let gw = gateway_with(
        &mocks,
        &plain,
        DownstreamTlsConfig::default(),
        Http2Mode::Always,
    )
    .await;
    let r = get(&format!("{}/x/users/1", gw.url), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        version(mocks.handle(Service::Users)).as_deref(),
        Some("HTTP/2.0"),
        "h2c prior knowledge"
    );
    // Multiplexed calls keep the deadline: a hanging h2 downstream is cut at the request budget.
    mocks
        .handle(Service::Users)
        .set_faults(vec![mock_services::FaultRule::new(
            mock_services::FaultKind::Hang,
        )]);
    let started = std::time::Instant::now();
    let r = get(&format!("{}/x/users/1", gw.url), &[]).await;
    assert!(
        r.status == 504 || r.status == 503,
        "{} {}",
        r.status,
        r.body
    );
    assert!(started.elapsed() < Duration::from_secs(15));
}

/// OpenID discovery over HTTPS: the identity downstream's discovery document points at a JWKS on another
/// host (another HTTPS identity mock), which is where the keys are fetched.
#[tokio::test]
async fn jwks_by_discovery_on_another_https_host() {
    let pki = Pki::new();
    let tls = Some(pki.server.mock_tls(None));
    let keys_host = mock_services::spawn(
        Service::Identity,
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        ServiceConfig {
            tls: tls.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mocks = tls_mocks(&pki.server, None).await;
    let issuer = mock_services::spawn(
        Service::Identity,
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        ServiceConfig {
            tls,
            idp: IdpConfig {
                jwks_uri: Some(format!("{}/.well-known/jwks.json", keys_host.url())),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut config = tls_config(bff_web::defaults(), &mocks, &pki.trust());
    config.downstreams.get_mut("identity").unwrap().url = issuer.url();
    config.auth.jwt.discovery = true;
    let gw = start(bff_web::app, config).await;
    let client = https(&pki.ca_file, None, Http2Mode::Auto);
    let token = mint_tls(&client, &mocks, "7", "bff-web").await;
    let r = get_auth(&format!("{}/api/home", gw.url), &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        issuer.route_count("GET /.well-known/openid-configuration"),
        1
    );
    assert_eq!(issuer.route_count("GET /.well-known/jwks.json"), 0);
    assert!(keys_host.route_count("GET /.well-known/jwks.json") >= 1);
    let r = get_auth(&format!("{}/api/home", gw.url), "not-a-token").await;
    assert_eq!(r.status, 401);
}

/// A discovery document announcing another issuer is refused: no keys, tokens are not accepted.
#[tokio::test]
async fn discovery_of_another_issuer_is_refused() {
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    config.auth.jwt.discovery = true;
    config.auth.jwt.issuer = "https://expected.example".into();
    let gw = start(bff_web::app, config).await;
    let token = mint(
        &mocks,
        serde_json::json!({"sub": "7", "aud": "bff-web", "iss": "https://expected.example"}),
    )
    .await;
    let r = get_auth(&format!("{}/api/home", gw.url), &token).await;
    r.assert_problem(401, "unauthenticated", &mocks);
    assert_eq!(
        mocks
            .handle(Service::Identity)
            .route_count("GET /.well-known/jwks.json"),
        0
    );
}

/// A gateway configuration terminating TLS with `pki`'s server certificate.
fn edge_tls(pki: &Pki) -> ServerTlsConfig {
    let (cert, key) = pki
        .server
        .write(&pki.dir.0, "edge")
        .expect("write edge cert");
    ServerTlsConfig::new(cert, key)
}

/// The edge over TLS answers HTTP/1.1 and HTTP/2 clients (ALPN) and sends HSTS.
#[tokio::test]
async fn edge_serves_http1_and_http2_over_tls_with_hsts() {
    let pki = Pki::new();
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    config.server.tls = Some(edge_tls(&pki));
    let gw = start(bff_web::app, config).await;
    assert!(gw.url.starts_with("https://"));
    for (mode, version) in [
        (Http2Mode::Never, hyper::Version::HTTP_11),
        (Http2Mode::Auto, hyper::Version::HTTP_2),
        (Http2Mode::Always, hyper::Version::HTTP_2),
    ] {
        let client = https(&pki.ca_file, None, mode);
        let r = https_get(&client, &format!("{}/healthz", gw.url), &[]).await;
        assert_eq!(r.status, 200, "{mode:?}: {}", r.body);
        assert_eq!(r.version, version, "{mode:?}");
        assert_eq!(
            r.headers
                .get("strict-transport-security")
                .and_then(|v| v.to_str().ok()),
            Some("max-age=31536000")
        );
        let r = https_get(&client, &format!("{}/api/home", gw.url), &[]).await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
}

/// Garbage, plain HTTP and a never-finished handshake on the TLS listener get no HTTP answer and are
/// closed (the slow one after the handshake timeout), while a proper client is served meanwhile.
#[tokio::test]
async fn edge_refuses_garbage_plain_http_and_slow_handshakes() {
    let pki = Pki::new();
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    let mut tls = edge_tls(&pki);
    tls.handshake_timeout_ms = 300;
    config.server.tls = Some(tls);
    let gw = start(bff_web::app, config).await;
    let addr = gw.url.trim_start_matches("https://").to_owned();
    let client = https(&pki.ca_file, None, Http2Mode::Auto);

    // A slowloris: connects, sends half a ClientHello and nothing more.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
        .await
        .unwrap();
    let r = https_get(&client, &format!("{}/healthz", gw.url), &[]).await;
    assert_eq!(r.status, 200, "others are served during the slow handshake");

    for junk in [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        (0u8..=255).cycle().take(4096).collect::<Vec<u8>>(),
    ] {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let _ = stream.write_all(&junk).await;
        let mut answer = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "connection closed");
        assert!(
            !String::from_utf8_lossy(&answer).contains("HTTP/"),
            "no HTTP answer: {answer:?}"
        );
    }

    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "the slow handshake was cut by the handshake timeout"
    );
    let r = https_get(&client, &format!("{}/healthz", gw.url), &[]).await;
    assert_eq!(r.status, 200, "still serving");
}

/// mTLS at the edge: a client certificate from the configured CA is accepted; one from another CA, or none
/// (`client_auth = "required"`), gets the handshake refused.
#[tokio::test]
async fn edge_mtls_refuses_certificates_of_another_ca() {
    let pki = Pki::new();
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    let mut tls = edge_tls(&pki);
    tls.client_ca_file = Some(pki.ca_file.clone());
    config.server.tls = Some(tls);
    let gw = start(bff_web::app, config).await;
    let url = format!("{}/healthz", gw.url);

    let good = pki.client("good", "someone", &[]);
    let r = https_get(
        &https(&pki.ca_file, Some(&good), Http2Mode::Auto),
        &url,
        &[],
    )
    .await;
    assert_eq!(r.status, 200);

    let rogue_ca = TestCa::new("rogue CA").unwrap();
    let rogue = rogue_ca
        .issue(&CertSpec::client("someone", &[]))
        .unwrap()
        .write(&pki.dir.0, "rogue")
        .unwrap();
    for client in [
        https(&pki.ca_file, Some(&rogue), Http2Mode::Auto),
        https(&pki.ca_file, None, Http2Mode::Auto),
    ] {
        let result = send(&client, "GET", &url, &[], "").await;
        assert!(
            result.is_err(),
            "handshake refused, got {:?}",
            result.map(|a| a.status)
        );
    }
    let r = https_get(
        &https(&pki.ca_file, Some(&good), Http2Mode::Never),
        &url,
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "still serving");
}

/// The partner gateway authenticates partners by client certificate (CN or SAN mapped to partner id, tier
/// and scopes), as an alternative to API keys; an unmapped certificate is not a partner.
#[tokio::test]
async fn partner_authenticates_by_client_certificate() {
    let pki = Pki::new();
    let mocks = mocks().await;
    let mut config = uncached(config_for(bff_partner::defaults(), &mocks));
    let mut tls = edge_tls(&pki);
    tls.client_ca_file = Some(pki.ca_file.clone());
    tls.client_auth = ClientAuth::Optional;
    config.server.tls = Some(tls);
    config.auth.client_certs = vec![
        ClientCertConfig {
            subject: Some("acme-client".into()),
            san: None,
            partner_id: "acme".into(),
            tier: "gold".into(),
            scopes: vec!["catalog:read".into(), "orders:read".into()],
        },
        ClientCertConfig {
            subject: None,
            san: Some("globex.partners.example".into()),
            partner_id: "globex".into(),
            tier: "silver".into(),
            scopes: vec!["catalog:read".into()],
        },
    ];
    let gw = start(bff_partner::app, config).await;
    let url = format!("{}/v1/products/12", gw.url);
    let catalog = mocks.handle(Service::Catalog);

    let acme = pki.client("acme", "acme-client", &[]);
    let r = https_get(
        &https(&pki.ca_file, Some(&acme), Http2Mode::Auto),
        &url,
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        catalog.last_header("x-bff-partner-id").as_deref(),
        Some("acme")
    );
    assert_eq!(
        catalog.last_header("x-bff-partner-tier").as_deref(),
        Some("gold")
    );

    let globex = pki.client("globex", "whatever", &["globex.partners.example"]);
    let r = https_get(
        &https(&pki.ca_file, Some(&globex), Http2Mode::Never),
        &url,
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        catalog.last_header("x-bff-partner-id").as_deref(),
        Some("globex")
    );

    // A forged identity header changes nothing.
    let r = https_get(
        &https(&pki.ca_file, Some(&globex), Http2Mode::Auto),
        &url,
        &[("x-bff-partner-id", "acme")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        catalog.last_header("x-bff-partner-id").as_deref(),
        Some("globex")
    );

    let stranger = pki.client("stranger", "stranger", &["stranger.example"]);
    let r = https_get(
        &https(&pki.ca_file, Some(&stranger), Http2Mode::Auto),
        &url,
        &[],
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("unauthenticated"), "{}", r.body);

    let no_cert = https(&pki.ca_file, None, Http2Mode::Auto);
    let r = https_get(&no_cert, &url, &[]).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = https_get(&no_cert, &url, &[("x-api-key", "dev-acme-key")]).await;
    assert_eq!(
        r.status, 200,
        "API keys still work without a certificate: {}",
        r.body
    );
}

/// The rustls client of the rotation test: trusts `ca_pem`, never resumes a session.
fn raw_client(ca_pem: &str) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    // Every connection a full handshake: a resumed session would report the certificate of its first one.
    let mut config = config;
    config.resumption = rustls::client::Resumption::disabled();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// The certificate a new handshake with `addr` is served.
async fn served_cert(connector: &tokio_rustls::TlsConnector, addr: &str) -> Vec<u8> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = connector.connect(name, tcp).await.expect("handshake");
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn der_of(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// The edge certificate is rotated without a restart: a new handshake gets the new certificate, an open
/// connection keeps working, and a broken replacement is refused while the current one keeps serving.
#[tokio::test]
async fn edge_certificate_rotation_without_restart() {
    let pki = Pki::new();
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    let mut tls = edge_tls(&pki);
    tls.reload_interval_ms = 50;
    let (cert_file, key_file) = (tls.cert_file.clone(), tls.key_file.clone());
    config.server.tls = Some(tls);
    let gw = start(bff_web::app, config).await;
    let addr = gw.url.trim_start_matches("https://").to_owned();
    let connector = raw_client(&pki.ca.cert_pem());
    assert_eq!(
        served_cert(&connector, &addr).await,
        der_of(&pki.server.cert_pem)
    );

    // An open connection from before the rotation.
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut open = connector.connect(name, tcp).await.unwrap();

    let next = pki.ca.issue(&CertSpec::server()).unwrap();
    std::fs::write(&key_file, &next.key_pem).unwrap();
    std::fs::write(&cert_file, &next.cert_pem).unwrap();
    let mut rotated = false;
    for _ in 0..100 {
        if served_cert(&connector, &addr).await == der_of(&next.cert_pem) {
            rotated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rotated, "a new handshake sees the new certificate");

    open.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), open.read_to_end(&mut answer)).await;
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "the connection opened before the rotation still works"
    );

    // A broken key: refused, the current certificate keeps serving.
    std::fs::write(
        &key_file,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(served_cert(&connector, &addr).await, der_of(&next.cert_pem));
    let client = https(&pki.ca_file, None, Http2Mode::Auto);
    let r = https_get(&client, &format!("{}/healthz", gw.url), &[]).await;
    assert_eq!(r.status, 200);
}

/// Unreadable, non-PEM and mismatched certificate/key files are configuration errors naming their key.
#[tokio::test]
async fn bad_certificate_files_name_their_key() {
    let pki = Pki::new();
    let (cert, key) = pki.server.write(&pki.dir.0, "edge").unwrap();
    let other = pki.ca.issue(&CertSpec::server()).unwrap();
    let (_, other_key) = other.write(&pki.dir.0, "other").unwrap();
    let missing = pki.dir.0.join("missing.pem");
    let garbage = pki.dir.file("garbage.pem", "not a certificate");
    let cases = [
        (ServerTlsConfig::new(&missing, &key), "server.tls.cert_file"),
        (ServerTlsConfig::new(&cert, &missing), "server.tls.key_file"),
        (ServerTlsConfig::new(&garbage, &key), "server.tls.cert_file"),
        (ServerTlsConfig::new(&cert, &garbage), "server.tls.key_file"),
        (
            ServerTlsConfig::new(&cert, &other_key),
            "server.tls.key_file",
        ),
        (
            ServerTlsConfig {
                client_ca_file: Some(garbage.clone()),
                ..ServerTlsConfig::new(&cert, &key)
            },
            "server.tls.client_ca_file",
        ),
    ];
    for (tls, key_name) in cases {
        let e = bff_core::tls::EdgeTls::new(&tls).unwrap_err().to_string();
        assert!(e.contains(key_name), "{key_name}: {e}");
    }
    let mocks = mocks().await;
    let mut config = config_for(bff_web::defaults(), &mocks);
    let users = config.downstreams.get_mut("users").unwrap();
    users.url = users.url.replace("http://", "https://");
    users.tls = DownstreamTlsConfig {
        cert_file: Some(cert.clone()),
        key_file: Some(other_key),
        ..Default::default()
    };
    let e = bff_web::app(config).unwrap_err().to_string();
    assert!(e.contains("downstreams.users.tls.key_file"), "{e}");
    let mut config = config_for(bff_web::defaults(), &mocks);
    let users = config.downstreams.get_mut("users").unwrap();
    users.url = users.url.replace("http://", "https://");
    users.tls.ca_file = Some(missing);
    let e = bff_web::app(config).unwrap_err().to_string();
    assert!(e.contains("downstreams.users.tls.ca_file"), "{e}");
    // TLS settings on a plain-HTTP downstream are a mistake, named as such.
    let mut config = config_for(bff_web::defaults(), &mocks);
    config.downstreams.get_mut("users").unwrap().tls.ca_file = Some(pki.ca_file.clone());
    let e = bff_web::app(config).unwrap_err().to_string();
    assert!(
        e.contains("downstreams.users.tls") && e.contains("https"),
        "{e}"
    );
}

/// A downstream client certificate is rotated without a restart: a gateway presenting a certificate the
/// downstream does not trust fails cleanly, and once the files hold a trusted one, new connections use it.
#[tokio::test]
async fn downstream_client_certificate_rotation() {
    let pki = Pki::new();
    let mocks = mocks().await;
    let users = users_over(pki.server.mock_tls(Some(&pki.ca.cert_pem()))).await;
    let rogue_ca = TestCa::new("rogue CA").unwrap();
    let (cert, key) = rogue_ca
        .issue(&CertSpec::client("bff-web-gateway", &[]))
        .unwrap()
        .write(&pki.dir.0, "gateway")
        .unwrap();
    let tls = DownstreamTlsConfig {
        cert_file: Some(cert.clone()),
        key_file: Some(key.clone()),
        reload_interval_ms: Some(50),
        ..pki.trust()
    };
    let gw = gateway_with(&mocks, &users.url(), tls, Http2Mode::Auto).await;
    assert_fails_cleanly(&gw, &mocks, users.addr().port()).await;

    let good = pki
        .ca
        .issue(&CertSpec::client("bff-web-gateway", &[]))
        .unwrap();
    std::fs::write(&key, &good.key_pem).unwrap();
    std::fs::write(&cert, &good.cert_pem).unwrap();
    let mut status = 0;
    // Up to ~10 s: the failures may have opened the breaker (5 s).
    for _ in 0..200 {
        status = get(&format!("{}/x/users/2", gw.url), &[]).await.status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200, "the rotated client certificate is presented");
}
