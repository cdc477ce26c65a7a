//! A real browser against bff-web's browser sessions: headless Chromium driven over the WebDriver HTTP
//! protocol (plain JSON over HTTP, with reqwest) through the demo web app — log in at the dev IdP's login
//! page, the composed home screen, add to cart, log out — checking the session cookie's flags from inside
//! the browser, that page JavaScript can read no token (`document.cookie`, storage), and that a page on
//! another origin cannot use the API. Screenshots of every step are kept under the target directory (the
//! path is printed). Needs Debian's `chromium` and `chromium-driver`: in CI (`CI` set) their absence fails
//! the test, elsewhere it skips with a notice.

mod common;
#[path = "common/sessions.rs"]
mod sessions;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use mock_services::Service;
use serde_json::{Value, json};
use sessions::{register, start_web};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C WebDriver element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process (killed by PID on drop) and one browser session.
struct Driver {
    child: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    profile: PathBuf,
    shots: PathBuf,
    step: usize,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Driver {
    /// Starts chromedriver and a headless Chromium session, or `None` (skip) outside CI when missing.
    async fn start() -> Option<Self> {
        if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "chromium and chromium-driver are required in CI"
            );
            eprintln!("chromium / chromedriver not installed; browser test skipped outside CI");
            return None;
        }
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let profile =
            std::env::temp_dir().join(format!("bff-chromium-{}-{port}", std::process::id()));
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-session");
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).unwrap();
        let mut driver = Self {
            child,
            base,
            session: String::new(),
            http,
            profile,
            shots,
            step: 0,
        };
        let started = Instant::now();
        loop {
            let ready = driver
                .http
                .get(format!("{}/status", driver.base))
                .send()
                .await;
            if let Ok(r) = ready
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1100,900", "--no-first-run", "--no-default-browser-check",
                         format!("--user-data-dir={}", driver.profile.display())],
            },
        }}});
        let created = driver.call("POST", "/session", caps).await;
        driver.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Some(driver)
    }

    /// One WebDriver command; its `value`.
    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let response: Value = request
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("json");
        let value = response["value"].clone();
        assert!(
            value.get("error").is_none(),
            "webdriver {method} {path}: {value}"
        );
        value
    }

    async fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({"url": url})).await;
    }

    async fn script(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
    }

    async fn script_async(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/async",
            json!({"script": script, "args": args}),
        )
        .await
    }

    async fn click(&self, css: &str) {
        let found = self
            .call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        let id = found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("element {css}: {found}"))
            .to_owned();
        self.call("POST", &format!("/element/{id}/click"), json!({}))
            .await;
    }

    /// Waits until `script` returns `true` (10 s at most).
    async fn until(&self, what: &str, script: &str) {
        let started = Instant::now();
        loop {
            let ok = self.script(script, json!([])).await;
            if ok == true {
                return;
            }
            if started.elapsed() > Duration::from_secs(10) {
                let shot = self.screenshot_raw().await;
                let path = self.shots.join("timeout.png");
                std::fs::write(&path, shot).unwrap();
                let text = self
                    .script(
                        "return document.body ? document.body.innerText : ''",
                        json!([]),
                    )
                    .await;
                panic!(
                    "timed out waiting for {what}; page: {text}; screenshot {}",
                    path.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot_raw(&self) -> Vec<u8> {
        let shot = self.call("GET", "/screenshot", json!(null)).await;
        base64::engine::general_purpose::STANDARD
            .decode(shot.as_str().expect("base64 png"))
            .expect("png")
    }

    /// Saves a screenshot of the current step.
    async fn screenshot(&mut self, name: &str) {
        self.step += 1;
        let path = self.shots.join(format!("{:02}-{name}.png", self.step));
        std::fs::write(&path, self.screenshot_raw().await).unwrap();
        println!("screenshot: {}", path.display());
    }

    async fn cookies(&self) -> Vec<Value> {
        self.call("GET", "/cookie", json!(null))
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// A page on another origin (same host, another port) that tries to use the API with the user's cookie.
async fn evil_origin() -> String {
    let page = "<!doctype html><title>another site</title><p id=out>waiting</p>";
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move { axum::response::Html(page) }),
    );
    common::serve_router(app).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_app_logs_in_shows_home_and_logs_out_in_a_real_browser() {
    let Some(mut driver) = Driver::start().await else {
        return;
    };
    let mocks = common::mocks().await;
    let gw = start_web(&mocks, |_| {}).await;
    register(&mocks, &[&gw.url], &gw.url);
    println!("screenshots in {}", driver.shots.display());

    // Anonymous: the app offers to log in.
    driver.goto(&format!("{}/", gw.url)).await;
    driver
        .until(
            "the anonymous state",
            "return document.body.dataset.state === 'anonymous'",
        )
        .await;
    driver.screenshot("anonymous").await;

    // Log in at the dev IdP's page as user 7.
    driver.click("#login").await;
    driver
        .until(
            "the IdP login page",
            "return !!document.getElementById('sign-in')",
        )
        .await;
    driver
        .script(
            "document.getElementById('user').value = '7'; return true",
            json!([]),
        )
        .await;
    driver.screenshot("idp-login").await;
    driver.click("#sign-in").await;
    driver
        .until(
            "the home screen",
            "return document.body.dataset.state === 'home'",
        )
        .await;
    let greeting = driver
        .script(
            "return document.getElementById('greeting').textContent",
            json!([]),
        )
        .await;
    assert!(
        greeting.as_str().unwrap_or("").starts_with("Welcome back"),
        "{greeting}"
    );
    let name = driver
        .script(
            "return document.getElementById('user-name').textContent",
            json!([]),
        )
        .await;
    assert!(!name.as_str().unwrap_or("").is_empty());
    driver.screenshot("home").await;

    // The cookie, as the browser holds it: HttpOnly, SameSite=Lax, host-only.
    let cookies = driver.cookies().await;
    let session = cookies
        .iter()
        .find(|c| c["name"] == "bff_session")
        .unwrap_or_else(|| panic!("{cookies:?}"));
    assert_eq!(session["httpOnly"], true, "{session}");
    assert_eq!(session["sameSite"], "Lax", "{session}");
    assert_eq!(session["path"], "/", "{session}");
    // Page JavaScript sees no session cookie and no token anywhere.
    let visible = driver
        .script(
            "return [document.cookie, JSON.stringify(Object.assign({}, localStorage)), \
             JSON.stringify(Object.assign({}, sessionStorage)), document.documentElement.outerHTML]",
            json!([]),
        )
        .await;
    let visible = visible.to_string();
    assert!(!visible.contains("bff_session"), "{visible}");
    for mark in ["eyJhbGci", "eyJ0eXAi", "access_token", "refresh_token"] {
        assert!(!visible.contains(mark), "{visible}");
    }
    let from_api = driver
        .script_async(
            "const done = arguments[arguments.length - 1];
             fetch('/bff/user', {headers: {'X-CSRF': '1'}}).then(r => r.text()).then(done, e => done(String(e)));",
            json!([]),
        )
        .await;
    assert!(
        from_api.as_str().unwrap_or("").contains("\"sub\":\"7\""),
        "{from_api}"
    );
    assert!(!from_api.to_string().contains("eyJ"), "{from_api}");

    // Add to cart: a write with the session.
    driver.click(".add-to-cart").await;
    driver
        .until(
            "the cart",
            "return Number(document.getElementById('cart').dataset.units || 0) >= 1",
        )
        .await;
    driver.screenshot("cart").await;

    // Another origin (same host, another port: same site, so SameSite does not stop the cookie) cannot use
    // the API: reads need X-CSRF, which forces a preflight the gateway does not grant; a no-cors write
    // cannot carry X-CSRF and is refused at the edge; nothing reaches a downstream.
    let orders_before = mocks.handle(Service::Orders).received_total();
    let users_before = mocks.handle(Service::Users).received_total();
    let evil = evil_origin().await;
    driver.goto(&format!("{evil}/")).await;
    let attempts = driver
        .script_async(
            "const [gw, done] = [arguments[0], arguments[arguments.length - 1]];
             const out = {};
             const attempt = async (name, f) => { try { const r = await f(); out[name] = 'status ' + r.status; }
                                                  catch (e) { out[name] = 'blocked'; } };
             (async () => {
               await attempt('read', () => fetch(gw + '/api/home', {credentials: 'include', headers: {'X-CSRF': '1'}}));
               await attempt('user', () => fetch(gw + '/bff/user', {credentials: 'include'}));
               await attempt('write', () => fetch(gw + '/api/cart/items', {method: 'POST', mode: 'no-cors',
                 credentials: 'include', headers: {'Content-Type': 'text/plain'},
                 body: JSON.stringify({product_id: '12', quantity: 1})}));
               document.getElementById('out').textContent = JSON.stringify(out);
               done(out);
             })();",
            json!([gw.url]),
        )
        .await;
    driver.screenshot("other-origin").await;
    assert_eq!(attempts["read"], "blocked", "{attempts}");
    assert_eq!(attempts["user"], "blocked", "{attempts}");
    // A no-cors answer is opaque (status 0) whatever happened: what matters is that nothing was written.
    assert_eq!(
        mocks.handle(Service::Orders).received_total(),
        orders_before,
        "{attempts}"
    );
    assert_eq!(
        mocks.handle(Service::Users).received_total(),
        users_before,
        "{attempts}"
    );

    // Log out: the session ends, the IdP's too, and the browser is back at the app, anonymous.
    driver.goto(&format!("{}/", gw.url)).await;
    driver
        .until(
            "the home screen again",
            "return document.body.dataset.state === 'home'",
        )
        .await;
    driver.click("#logout").await;
    driver
        .until(
            "the anonymous state after logout",
            "return document.body.dataset.state === 'anonymous'",
        )
        .await;
    driver.screenshot("logged-out").await;
    let cookies = driver.cookies().await;
    assert!(
        !cookies.iter().any(|c| c["name"] == "bff_session"),
        "{cookies:?}"
    );
    let _ = driver.call("DELETE", "", json!(null)).await;
}
