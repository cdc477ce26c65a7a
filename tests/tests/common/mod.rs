//! Shared harness of the black-box tests: spawns the mock services and a gateway on ephemeral ports, mints
//! real tokens at the mock identity provider, and speaks real HTTP to them.
#![allow(dead_code, unreachable_pub)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use axum::Router;
use bff_core::BffConfig;
use bff_core::config::ConfigError;
use mock_services::{MockStack, Service};
use reqwest::header::HeaderMap;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A gateway serving on an ephemeral port until dropped or shut down.
pub struct RunningGateway {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`, `/config`): `http://127.0.0.1:<port>`.
    pub admin_url: String,
    /// The admin side of the gateway (metrics, readiness).
    pub admin: bff_core::admin::Admin,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl RunningGateway {
    /// Stops accepting, drains, and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The seven mock services on ephemeral ports.
pub async fn mocks() -> MockStack {
    mock_services::spawn_all(IpAddr::V4(Ipv4Addr::LOCALHOST), None)
        .await
        .expect("mocks start")
}

/// `defaults` re-pointed at `mocks`, listening on an ephemeral port.
pub fn config_for(defaults: BffConfig, mocks: &MockStack) -> BffConfig {
    let mut config = defaults;
    config.server.listen = (Ipv4Addr::LOCALHOST, 0).into();
    config.admin.listen = (Ipv4Addr::LOCALHOST, 0).into();
    for service in Service::ALL {
        if let Some(d) = config.downstreams.get_mut(service.name()) {
            d.url = mocks.url(service);
        }
    }
    config
}

/// Builds the router with `app` and serves it on `127.0.0.1:0` (over TLS when `config.server.tls` is set;
/// the URL is then `https://`), and its admin router on another `127.0.0.1:0` (stopped with the process: it
/// holds no connection the tests wait for).
pub async fn start(
    app: fn(BffConfig) -> Result<Router, ConfigError>,
    config: BffConfig,
) -> RunningGateway {
    let tls = config
        .server
        .tls
        .as_ref()
        .map(|t| bff_core::tls::EdgeTls::new(t).expect("valid TLS files"));
    let limits = config.server.limits.clone();
    let (router, admin) = bff_core::admin::capture(|| app(config));
    let router = router.expect("valid gateway config");
    let admin = admin.expect("the gateway offers its admin side");
    let admin_listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind admin");
    let admin_url = format!("http://{}", admin_listener.local_addr().expect("addr"));
    tokio::spawn(bff_core::server::serve(
        admin_listener,
        admin.router(),
        std::future::pending(),
        Duration::from_secs(1),
    ));
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        bff_core::server::serve_with_tls(
            listener,
            router,
            async move {
                let _ = stopped.await;
            },
            Duration::from_secs(5),
            &limits,
            tls,
        )
        .await
    });
    RunningGateway {
        url,
        admin_url,
        admin,
        stop: Some(stop),
        task: Some(task),
    }
}

/// Mocks + bff-web with its defaults.
pub async fn web() -> (MockStack, RunningGateway) {
    let mocks = mocks().await;
    let gw = start(bff_web::app, config_for(bff_web::defaults(), &mocks)).await;
    (mocks, gw)
}

/// Mocks + bff-mobile with its defaults.
pub async fn mobile() -> (MockStack, RunningGateway) {
    let mocks = mocks().await;
    let gw = start(bff_mobile::app, config_for(bff_mobile::defaults(), &mocks)).await;
    (mocks, gw)
}

/// Mocks + bff-partner with its defaults.
pub async fn partner() -> (MockStack, RunningGateway) {
    let mocks = mocks().await;
    let gw = start(
        bff_partner::app,
        config_for(bff_partner::defaults(), &mocks),
    )
    .await;
    (mocks, gw)
}

/// Turns the response store off for every downstream (coalescing stays): for tests that inject a fault
/// after a first successful call and expect to see it.
pub fn uncached(mut config: BffConfig) -> BffConfig {
    for d in config.downstreams.values_mut() {
        d.cache.enabled = false;
    }
    config
}

/// Mocks + bff-web with its defaults, response store off.
pub async fn web_uncached() -> (MockStack, RunningGateway) {
    let mocks = mocks().await;
    let gw = start(
        bff_web::app,
        uncached(config_for(bff_web::defaults(), &mocks)),
    )
    .await;
    (mocks, gw)
}

/// Mocks + bff-mobile with its defaults, response store off.
pub async fn mobile_uncached() -> (MockStack, RunningGateway) {
    let mocks = mocks().await;
    let gw = start(
        bff_mobile::app,
        uncached(config_for(bff_mobile::defaults(), &mocks)),
    )
    .await;
    (mocks, gw)
}

/// Mocks + bff-partner with its defaults, response store off.
pub async fn partner_uncached() -> (MockStack, RunningGateway) {
    let mocks = mocks().await;
    let gw = start(
        bff_partner::app,
        uncached(config_for(bff_partner::defaults(), &mocks)),
    )
    .await;
    (mocks, gw)
}

/// Polls `cond` every 20 ms for up to `within`.
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + within;
    while std::time::Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

/// A plain client (no proxy, no redirects), with a generous overall timeout so a hung test fails.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// Mints a token at the mock identity provider with any extra fields (`iss`, `time_offset_s`, `alg`, ...).
pub async fn mint(mocks: &MockStack, body: serde_json::Value) -> String {
    let response = client()
        .post(format!("{}/token", mocks.url(Service::Identity)))
        .json(&body)
        .send()
        .await
        .expect("token request");
    assert!(
        response.status().is_success(),
        "token minting failed: {}",
        response.status()
    );
    let json: serde_json::Value = response.json().await.expect("token json");
    json["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// A valid token for `sub` at `aud` with `scopes`.
pub async fn token(mocks: &MockStack, sub: &str, aud: &str, scopes: &[&str]) -> String {
    mint(
        mocks,
        serde_json::json!({"sub": sub, "aud": aud, "scopes": scopes, "ttl_s": 300}),
    )
    .await
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body as text.
    pub body: String,
}

impl Reply {
    /// The body as JSON (panics with the body when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json answer with `status` and `code`, carrying the request id, leaking nothing.
    pub fn assert_problem(&self, status: u16, code: &str, mocks: &MockStack) {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.body
        );
        let json = self.json();
        assert_eq!(json["code"], code, "{}", self.body);
        assert_eq!(json["status"], status);
        assert_eq!(
            json["request_id"].as_str(),
            self.header("x-request-id"),
            "problem carries the request id"
        );
        let request_id = json["request_id"].as_str().unwrap_or_default();
        assert_no_leak(&self.body.replace(request_id, ""), mocks);
    }
}

/// Asserts that `text` names no downstream address, port, library or injected internal detail.
pub fn assert_no_leak(text: &str, mocks: &MockStack) {
    for handle in mocks.handles() {
        let port = handle.addr().port().to_string();
        assert!(
            !text.contains(&port),
            "leaks a downstream port {port}: {text}"
        );
    }
    for needle in [
        "127.0.0.1",
        "localhost",
        "reqwest",
        "hyper",
        "axum",
        "tokio",
        "stack trace",
        "db-7",
        "internal:",
        "panicked",
    ] {
        assert!(
            !text.to_lowercase().contains(needle),
            "leaks `{needle}`: {text}"
        );
    }
}

/// GET `url` with `headers`.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    get_with(&client(), url, headers).await
}

/// GET `url` with `headers` through `client` (e.g. one bound to another loopback source address).
pub async fn get_with(client: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = client.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.expect("body"),
    }
}

/// GET `url` with a bearer token.
pub async fn get_auth(url: &str, token: &str) -> Reply {
    get(url, &[("authorization", &format!("Bearer {token}"))]).await
}

/// Runs Schemathesis (PyPI) against the OpenAPI document at `url` with the contract checks (no 5xx,
/// documented statuses and media types, bodies matching their schemas), coverage and fuzzing phases, a
/// fixed `seed` and the caller's extra `args` (a credential header, path filters). Panics on a finding;
/// returns the report. Outside CI a missing `schemathesis` skips (`None`) with a notice; in CI it fails.
/// Blocking: call it from a blocking thread in async tests.
pub fn schemathesis(label: &str, url: &str, seed: &str, args: &[&str]) -> Option<String> {
    // Schemathesis keeps a cache in its working directory: a fresh one per run, removed afterwards.
    let work =
        std::env::temp_dir().join(format!("bff-schemathesis-{}-{label}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work dir");
    let out = std::process::Command::new("schemathesis")
        .current_dir(&work)
        .args(["run", url])
        .args(args)
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"])
        .args(["--phases", "coverage,fuzzing", "--max-examples", "25", "--workers", "1"])
        .args(["--seed", seed, "--no-color"])
        .env("SCHEMATHESIS_HOOKS", "")
        .output();
    let _ = std::fs::remove_dir_all(&work);
    let out = match out {
        Ok(out) => out,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("schemathesis not available ({e}); skipped outside CI");
            return None;
        }
        Err(e) => panic!("schemathesis is required in CI: {e}"),
    };
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{label}: schemathesis found contract violations:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("passed"), "{label}: {report}");
    Some(report)
}

/// An order of `user` whose status is not final (so the orders mock can advance it at least once), read from
/// the mock's REST face.
pub async fn open_order(mocks: &MockStack, user: &str) -> String {
    let page: serde_json::Value = client()
        .get(format!(
            "{}/users/{user}/orders?limit=50",
            mocks.url(Service::Orders)
        ))
        .send()
        .await
        .expect("orders")
        .json()
        .await
        .expect("json");
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|o| ["placed", "paid", "shipped"].contains(&o["status"].as_str().unwrap_or("")))
        .and_then(|o| o["id"].as_str())
        .expect("an order that can advance")
        .to_owned()
}

/// `POST /admin/orders/{order}/advance` at the orders mock: moves the order to its next status; the change
/// it answers (`{"seq": n, "order": {...}}`).
pub async fn advance(mocks: &MockStack, order: &str) -> serde_json::Value {
    client()
        .post(format!(
            "{}/admin/orders/{order}/advance",
            mocks.url(Service::Orders)
        ))
        .send()
        .await
        .expect("advance")
        .json()
        .await
        .expect("json")
}

/// Serves `app` on an ephemeral loopback port in the background (a test's own downstream or page) and
/// returns its base URL.
pub async fn serve_router(app: Router) -> String {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}
