//! bff-web as the browser's OAuth client, over real HTTP: the login flow against the mock IdP (state, nonce,
//! PKCE, single-use codes, local return URLs), the session cookie (flags, forgery, replay, fixation), the
//! anti-forgery checks, refresh (once per session across two instances sharing a real redis-server, and a
//! refused refresh ending the session), back-channel logout reaching another instance, and that no token
//! ever reaches the browser.

mod common;
#[path = "common/redis_server.rs"]
mod redis_server;
#[path = "common/sessions.rs"]
mod sessions;

use std::time::Duration;

use common::{assert_no_leak, mocks};
use mock_services::Service;
use redis_server::RedisServer;
use reqwest::Method;
use sessions::{Browser, idp, register, start_web, with_param};

/// What a JWT looks like in text (`{"alg"` or `{"typ"` base64url-encoded).
const JWT_MARKS: [&str; 2] = ["eyJhbGci", "eyJ0eXAi"];

fn assert_no_token(browser: &Browser) {
    for text in browser.received.lock().unwrap().iter() {
        for mark in JWT_MARKS {
            assert!(!text.contains(mark), "a token reached the browser: {text}");
        }
        for word in ["access_token", "refresh_token", "id_token"] {
            assert!(
                !text.contains(word),
                "token field reached the browser: {text}"
            );
        }
    }
}

#[tokio::test]
async fn login_sets_an_httponly_session_and_the_api_accepts_it() {
    let mocks = mocks().await;
    let gw = start_web(&mocks, |_| {}).await;
    register(&mocks, &[&gw.url], &gw.url);
    let browser = Browser::new();

    // Not logged in: the SPA learns it must log in.
    let anonymous = browser.api(&format!("{}/bff/user", gw.url)).await;
    anonymous.assert_problem(401, "session_expired", &mocks);

    browser.login(&gw.url, "7").await;
    let cookie_line = browser
        .set_cookies
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.starts_with("bff_session=") && !l.contains("Max-Age=0"))
        .cloned()
        .expect("session cookie set");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie_line.contains(flag), "{cookie_line}");
    }
    assert!(!cookie_line.contains("Secure"), "plain HTTP: {cookie_line}");
    assert!(
        browser.cookie("bff_session_login").is_none(),
        "login cookie cleared"
    );

    let user = browser.api(&format!("{}/bff/user", gw.url)).await;
    assert_eq!(user.status, 200, "{}", user.body);
    assert_eq!(user.header("cache-control"), Some("no-store"));
    assert_eq!(user.json()["claims"]["sub"], "7");
    assert!(user.json()["claims"]["name"].is_string());

    let home = browser.api(&format!("{}/api/home", gw.url)).await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert_eq!(home.json()["profile"]["id"], "7");
    // The downstream saw the verified identity, and never the browser's cookie.
    let seen = mocks.handle(Service::Users).received();
    let last = seen.last.expect("users called");
    assert!(
        last.headers
            .iter()
            .any(|(k, v)| k == "x-bff-user-id" && v == "7")
    );
    assert!(
        !last.headers.iter().any(|(k, _)| k == "cookie"),
        "{:?}",
        last.headers
    );

    // A write with the session: X-CSRF and a same-origin Origin.
    let added = browser
        .send(
            Method::POST,
            &format!("{}/api/cart/items", gw.url),
            &[
                ("x-csrf", "1"),
                ("origin", &gw.url),
                ("content-type", "application/json"),
            ],
            None,
        )
        .await;
    assert_eq!(added.status, 400, "empty body refused: {}", added.body);
    let client = common::client();
    let cookie = format!("bff_session={}", browser.cookie("bff_session").unwrap());
    let added = client
        .post(format!("{}/api/cart/items", gw.url))
        .header("cookie", &cookie)
        .header("x-csrf", "1")
        .header("origin", &gw.url)
        .json(&serde_json::json!({"product_id": "12", "quantity": 1}))
        .send()
        .await
        .unwrap();
    assert!(added.status().is_success(), "{}", added.status());
    assert_no_token(&browser);
}

#[tokio::test]
async fn anti_forgery_header_and_origin_are_required() {
    let mocks = mocks().await;
    let gw = start_web(&mocks, |_| {}).await;
    register(&mocks, &[&gw.url], &gw.url);
    let browser = Browser::new();
    browser.login(&gw.url, "7").await;
    mocks.handle(Service::Users).state().recorder().reset();

    let missing = browser.get(&format!("{}/api/home", gw.url), &[]).await;
    missing.assert_problem(403, "csrf_header_required", &mocks);
    let wrong = browser
        .get(&format!("{}/api/home", gw.url), &[("x-csrf", "0")])
        .await;
    wrong.assert_problem(403, "csrf_header_required", &mocks);
    assert_eq!(
        mocks.handle(Service::Users).received().total,
        0,
        "nothing reached a downstream"
    );
    let form = Some(String::new());
    for origin in [None, Some("http://evil.example"), Some("null")] {
        let mut headers = vec![("x-csrf", "1")];
        if let Some(origin) = origin {
            headers.push(("origin", origin));
        }
        let cross = browser
            .send(
                Method::POST,
                &format!("{}/api/cart/items", gw.url),
                &headers,
                form.clone(),
            )
            .await;
        cross.assert_problem(403, "origin_not_allowed", &mocks);
        // Logout needs the origin too (a cross-site form cannot log the user out).
        let headers: Vec<(&str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
        let logout = browser
            .send(
                Method::POST,
                &format!("{}/bff/logout", gw.url),
                &headers,
                None,
            )
            .await;
        logout.assert_problem(403, "origin_not_allowed", &mocks);
    }
    // `Origin: null` counts only with the browser's own `Sec-Fetch-Site: same-origin`.
    for (site, status) in [
        ("cross-site", 403),
        ("same-site", 403),
        ("same-origin", 303),
    ] {
        let logout = Browser::new();
        logout.set("bff_session", "x");
        let r = logout
            .send(
                Method::POST,
                &format!("{}/bff/logout", gw.url),
                &[("origin", "null"), ("sec-fetch-site", site)],
                None,
            )
            .await;
        assert_eq!(r.status, status, "{site}: {}", r.body);
    }
    assert_eq!(mocks.handle(Service::Orders).received().total, 0);
    // The session survived all of it.
    assert_eq!(
        browser.api(&format!("{}/api/home", gw.url)).await.status,
        200
    );
    // A bearer token still works alongside (config: `bearer = true`), without X-CSRF.
    let token = common::token(&mocks, "8", "bff-web", &[]).await;
    let bearer = common::get_auth(&format!("{}/api/home", gw.url), &token).await;
    assert_eq!(bearer.status, 200, "{}", bearer.body);
}

#[tokio::test]
async fn bearer_tokens_can_be_switched_off() {
    let mocks = mocks().await;
    let gw = start_web(&mocks, |c| c.auth.session.bearer = false).await;
    let token = common::token(&mocks, "8", "bff-web", &[]).await;
    let bearer = common::get_auth(&format!("{}/api/home", gw.url), &token).await;
    bearer.assert_problem(401, "session_expired", &mocks);
}

#[tokio::test]
async fn tampered_state_nonce_or_pkce_and_replayed_codes_fail() {
    let mocks = mocks().await;
    let gw = start_web(&mocks, |_| {}).await;
    register(&mocks, &[&gw.url], &gw.url);
    let login = format!("{}/bff/login?returnUrl=%2F&login_hint=7", gw.url);

    // state: the callback's state is not this browser's.
    let browser = Browser::new();
    let start = browser.get(&login, &[]).await;
    let authorized = browser.follow(&start).await;
    let location = authorized.header("location").unwrap();
    let tampered = browser
        .get(&with_param(location, "state", "forged-state"), &[])
        .await;
    tampered.assert_problem(400, "login_failed", &mocks);
    // Another browser (no login cookie) presenting a genuine callback URL fails too.
    let other = Browser::new();
    let stolen = other.get(location, &[]).await;
    stolen.assert_problem(400, "login_failed", &mocks);

    // nonce: the IdP is asked with another nonce, so the ID token does not carry the login's.
    let browser = Browser::new();
    let start = browser.get(&login, &[]).await;
    let authorize = with_param(start.header("location").unwrap(), "nonce", "attacker-nonce");
    let authorized = browser.get(&authorize, &[]).await;
    assert_eq!(authorized.status, 302);
    browser
        .follow(&authorized)
        .await
        .assert_problem(400, "login_failed", &mocks);

    // PKCE: the IdP is given another challenge, so the gateway's verifier does not match it.
    let browser = Browser::new();
    let start = browser.get(&login, &[]).await;
    let challenge = mock_services::oidc::s256(&"x".repeat(43));
    let authorize = with_param(
        start.header("location").unwrap(),
        "code_challenge",
        &challenge,
    );
    let authorized = browser.get(&authorize, &[]).await;
    assert_eq!(authorized.status, 302);
    browser
        .follow(&authorized)
        .await
        .assert_problem(400, "login_failed", &mocks);

    // Code replay: a completed callback replayed, and the used code under a fresh login's state.
    let browser = Browser::new();
    let start = browser.get(&login, &[]).await;
    let authorized = browser.follow(&start).await;
    let callback_url = authorized.header("location").unwrap().to_owned();
    let login_cookie = browser.cookie("bff_session_login").unwrap();
    assert_eq!(browser.get(&callback_url, &[]).await.status, 302);
    browser.set("bff_session_login", &login_cookie);
    browser
        .get(&callback_url, &[])
        .await
        .assert_problem(400, "login_failed", &mocks);
    let fresh = browser.get(&login, &[]).await;
    let fresh_state = url::Url::parse(fresh.header("location").unwrap())
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let replay = with_param(&callback_url, "state", &fresh_state);
    browser
        .get(&replay, &[])
        .await
        .assert_problem(400, "login_failed", &mocks);

    // The IdP refusing (unknown user) is a failed login, not a session.
    let browser = Browser::new();
    let start = browser
        .get(&format!("{}/bff/login?login_hint=999999", gw.url), &[])
        .await;
    let refused = browser.follow(&start).await;
    browser
        .follow(&refused)
        .await
        .assert_problem(400, "login_failed", &mocks);
    assert!(browser.cookie("bff_session").is_none());
}

#[tokio::test]
async fn only_local_return_urls_are_accepted() {
    let mocks = mocks().await;
    let gw = start_web(&mocks, |_| {}).await;
    let browser = Browser::new();
    for foreign in [
        "https://evil.example/",
        "//evil.example",
        "/\\evil.example",
        "%2F%2Fevil.example",
        "javascript:alert(1)",
        "/%09/evil.example",
        "evil",
    ] {
        let r = browser
            .get(&format!("{}/bff/login?returnUrl={foreign}", gw.url), &[])
            .await;
        r.assert_problem(400, "invalid_return_url", &mocks);
    }
    let ok = browser
        .get(
            &format!("{}/bff/login?returnUrl=%2Fcart%3Fx%3D1", gw.url),
            &[],
        )
        .await;
    assert_eq!(ok.status, 302, "{}", ok.body);
}

#[tokio::test]
async fn forged_replayed_and_fixated_cookies_get_nothing() {
    let mocks = mocks().await;
    let gw = start_web(&mocks, |_| {}).await;
    register(&mocks, &[&gw.url], &gw.url);
    let home = format!("{}/api/home", gw.url);

    let forger = Browser::new();
    forger.set("bff_session", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    forger
        .api(&home)
        .await
        .assert_problem(401, "session_expired", &mocks);

    // Fixation: an attacker's own live session id planted in the victim's browser before login is
    // replaced at login (and ended), so the attacker cannot ride the victim's session.
    let attacker = Browser::new();
    attacker.login(&gw.url, "8").await;
    let planted = attacker.cookie("bff_session").unwrap();
    let victim = Browser::new();
    victim.set("bff_session", &planted);
    victim.login(&gw.url, "7").await;
    let issued = victim.cookie("bff_session").unwrap();
    assert_ne!(issued, planted, "a new id at login");
    assert_eq!(victim.api(&home).await.json()["profile"]["id"], "7");
    attacker
        .api(&home)
        .await
        .assert_problem(401, "session_expired", &mocks);

    // Replay after logout: the old cookie is dead on the server, not just deleted in the browser.
    let logout = victim
        .send(
            Method::POST,
            &format!("{}/bff/logout", gw.url),
            &[("origin", &gw.url)],
            None,
        )
        .await;
    assert_eq!(logout.status, 303, "{}", logout.body);
    let to = logout.header("location").unwrap();
    assert!(to.starts_with(&mocks.url(Service::Identity)), "{to}");
    assert!(to.contains("post_logout_redirect_uri"), "{to}");
    assert!(victim.cookie("bff_session").is_none(), "cookie cleared");
    let replayer = Browser::new();
    replayer.set("bff_session", &issued);
    replayer
        .api(&home)
        .await
        .assert_problem(401, "session_expired", &mocks);
    // The IdP's end_session brings the browser back to the app.
    let back = victim.follow(&logout).await;
    assert_eq!(back.status, 302);
    assert_eq!(
        back.header("location"),
        Some(format!("{}/", gw.url).as_str())
    );
    assert_no_token(&victim);
    assert_no_token(&attacker);
}

#[tokio::test]
async fn secure_cookies_use_the_host_prefix() {
    let mocks = mocks().await;
    let gw = start_web(&mocks, |c| c.auth.session.secure_cookie = Some(true)).await;
    register(&mocks, &[&gw.url], &gw.url);
    let browser = Browser::new();
    browser.login(&gw.url, "7").await;
    let lines = browser.set_cookies.lock().unwrap().clone();
    let session = lines
        .iter()
        .find(|l| l.starts_with("__Host-bff_session=") && !l.contains("Max-Age=0"))
        .unwrap_or_else(|| panic!("{lines:?}"));
    for flag in ["Secure", "HttpOnly", "Path=/", "SameSite=Lax"] {
        assert!(session.contains(flag), "{session}");
    }
    assert!(!session.contains("Domain="), "{session}");
    let user = browser.api(&format!("{}/bff/user", gw.url)).await;
    assert_eq!(user.status, 200, "{}", user.body);
}

/// Two instances sharing one real redis-server: a session made on one works on the other; concurrent
/// requests on both when the access token is about to expire make exactly one refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_happens_once_across_instances_sharing_redis() {
    let redis = RedisServer::start();
    let mocks = mocks().await;
    let shared = |c: &mut bff_core::BffConfig| {
        c.auth.session.store = bff_core::session::config::SessionStoreKind::Redis;
        c.auth.session.redis.url = redis.url();
        c.auth.session.redis.timeout_ms = 2_000;
        c.auth.session.refresh_before_s = 3;
        c.auth.jwt.verified_cache_entries = 0;
    };
    let a = start_web(&mocks, shared).await;
    let b = start_web(&mocks, shared).await;
    register(&mocks, &[&a.url, &b.url], &b.url);
    // Tokens live 5 s; refreshed when under 3 s are left.
    idp(&mocks).grants().access_ttl_s = 5;
    let browser = Browser::new();
    browser.login(&a.url, "7").await;
    assert_eq!(
        browser.api(&format!("{}/api/home", b.url)).await.status,
        200
    );
    assert_eq!(idp(&mocks).grants().refreshes, 0);

    tokio::time::sleep(Duration::from_millis(2_300)).await;
    let browser = std::sync::Arc::new(browser);
    let requests = (0..16).map(|i| {
        let browser = browser.clone();
        let url = format!("{}/api/home", if i % 2 == 0 { &a.url } else { &b.url });
        async move { browser.api(&url).await.status }
    });
    let statuses = futures::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        idp(&mocks).grants().refreshes,
        1,
        "one refresh for 16 concurrent requests"
    );
    assert_eq!(idp(&mocks).grants().refused_refreshes, 0);
    assert_no_token(&browser);

    // The IdP revokes the user: the next refresh is refused and ends the session (everywhere).
    idp(&mocks).grants().revoke_subject("7");
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    let ended = browser.api(&format!("{}/api/home", a.url)).await;
    ended.assert_problem(401, "session_expired", &mocks);
    let elsewhere = browser.api(&format!("{}/api/home", b.url)).await;
    elsewhere.assert_problem(401, "session_expired", &mocks);
}

/// A back-channel logout delivered to one instance ends the user's sessions on the other (shared store);
/// forged logout tokens are refused and end nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backchannel_logout_reaches_every_instance() {
    let redis = RedisServer::start();
    let mocks = mocks().await;
    let shared = |c: &mut bff_core::BffConfig| {
        c.auth.session.store = bff_core::session::config::SessionStoreKind::Redis;
        c.auth.session.redis.url = redis.url();
        c.auth.session.redis.timeout_ms = 2_000;
    };
    let a = start_web(&mocks, shared).await;
    let b = start_web(&mocks, shared).await;
    register(&mocks, &[&a.url, &b.url], &b.url);
    let seven = Browser::new();
    seven.login(&a.url, "7").await;
    let eight = Browser::new();
    eight.login(&a.url, "8").await;

    // Forged: a token for another audience, a plain access token, garbage.
    let other_aud = idp(&mocks)
        .logout_token("bff-mobile", Some("7"), None)
        .unwrap();
    let access = common::token(&mocks, "7", "bff-web", &[]).await;
    let client = common::client();
    for token in [other_aud.as_str(), access.as_str(), "garbage", ""] {
        let r = client
            .post(format!("{}/bff/backchannel-logout", b.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("logout_token={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], "invalid_logout_token");
    }
    assert_eq!(seven.api(&format!("{}/api/home", a.url)).await.status, 200);

    // The IdP tells instance b that user 7 logged out.
    let sent = client
        .post(format!(
            "{}/admin/backchannel-logout",
            mocks.url(Service::Identity)
        ))
        .json(&serde_json::json!({"client_id": "bff-web", "sub": "7"}))
        .send()
        .await
        .unwrap();
    let sent: serde_json::Value = sent.json().await.unwrap();
    assert_eq!(sent["status"], 200, "{sent}");
    seven
        .api(&format!("{}/api/home", a.url))
        .await
        .assert_problem(401, "session_expired", &mocks);
    assert_eq!(
        eight.api(&format!("{}/api/home", a.url)).await.status,
        200,
        "other users keep theirs"
    );
}

/// The session endpoints' documents: bff-web's OpenAPI lists them (and the cookie scheme) when sessions are on.
#[tokio::test]
async fn session_endpoints_are_documented() {
    let mocks = mocks().await;
    let gw = start_web(&mocks, |_| {}).await;
    let doc = common::get(&format!("{}/openapi.json", gw.url), &[])
        .await
        .json();
    for (path, method) in [
        ("/bff/login", "get"),
        ("/bff/callback", "get"),
        ("/bff/user", "get"),
        ("/bff/logout", "post"),
        ("/bff/backchannel-logout", "post"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{path}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["session"]["in"],
        "cookie"
    );
    assert_eq!(
        doc["paths"]["/api/home"]["get"]["security"],
        serde_json::json!([{"bearer": []}, {"session": []}])
    );
    assert_no_leak(&doc.to_string(), &mocks);
    // A valid OpenAPI 3.1 document (outside CI a missing validator skips with a notice).
    let file =
        std::env::temp_dir().join(format!("bff-openapi-session-{}.json", std::process::id()));
    std::fs::write(&file, doc.to_string()).unwrap();
    let run = std::process::Command::new("openapi-spec-validator")
        .arg(&file)
        .output();
    let _ = std::fs::remove_file(&file);
    match run {
        Ok(out) => assert!(
            out.status.success(),
            "openapi-spec-validator: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("openapi-spec-validator not available ({e}); skipped outside CI");
        }
        Err(e) => panic!("openapi-spec-validator is required in CI: {e}"),
    }
}

/// A hot reload (SIGHUP / file change) keeps the in-memory sessions: users stay logged in.
#[tokio::test]
async fn sessions_survive_a_hot_reload() {
    use bff_core::reload::{Build, Reloader};
    let mocks = mocks().await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [auth.jwt]\ndiscovery = true\n[auth.session]\nenabled = true\nredirect_uri = \"{url}/bff/callback\"\n"
    );
    for service in Service::ALL {
        text.push_str(&format!(
            "[downstreams.{}]\nurl = \"{}\"\n",
            service.name(),
            mocks.url(service)
        ));
    }
    let dir = std::env::temp_dir().join(format!("bff-session-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("web.toml");
    std::fs::write(&path, &text).unwrap();
    let build = Build {
        defaults: bff_web::defaults,
        app: bff_web::app,
    };
    let config = bff_core::BffConfig::load(&bff_web::defaults(), Some(&path)).expect("valid file");
    let reloader =
        std::sync::Arc::new(Reloader::start(build, Some(&path), config).expect("builds"));
    tokio::spawn(bff_core::server::serve(
        listener,
        reloader.public_router(),
        std::future::pending(),
        Duration::from_secs(1),
    ));
    register(&mocks, &[&url], &url);
    let browser = Browser::new();
    browser.login(&url, "7").await;
    assert_eq!(browser.api(&format!("{url}/api/home")).await.status, 200);
    // A changed file (a new idle timeout), reloaded: the session is still there.
    std::fs::write(
        &path,
        text.replace("enabled = true\n", "enabled = true\nidle_timeout_s = 900\n"),
    )
    .unwrap();
    reloader.reload().expect("valid reload");
    let after = browser.api(&format!("{url}/api/home")).await;
    assert_eq!(after.status, 200, "{}", after.body);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Schemathesis against bff-web with sessions on: generated requests to every operation (the session
/// endpoints included: random return URLs, codes, states, logout tokens) get documented statuses and media
/// types and no 500. Outside CI a missing `schemathesis` skips with a notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_keep_the_session_contract() {
    let mocks = mocks().await;
    let gw = start_web(&mocks, |_| {}).await;
    register(&mocks, &[&gw.url], &gw.url);
    let token = common::token(&mocks, "7", "bff-web", &["orders:read"]).await;
    let url = gw.url.clone();
    let report = tokio::task::spawn_blocking(move || {
        let bearer = format!("Authorization: Bearer {token}");
        let args = ["-H", bearer.as_str(), "--include-path-regex", "^/bff/"];
        common::schemathesis("session", &format!("{url}/openapi.json"), "20261202", &args)
    })
    .await
    .expect("schemathesis runs");
    let Some(report) = report else { return };
    // Every session operation (and only those) was exercised.
    assert!(report.contains("Tested: 5"), "{report}");
}

/// The session endpoints are rate limited per client address (a login flood cannot fill the store).
#[tokio::test]
async fn session_endpoints_are_rate_limited_per_address() {
    use bff_core::ratelimit::{KeyPart, PolicyConfig};
    let mocks = mocks().await;
    let gw = start_web(&mocks, |c| {
        c.rate_limit.policies = vec![PolicyConfig::new("ip", &[KeyPart::Ip], 1, 60, 3)];
    })
    .await;
    let browser = Browser::new();
    let login = format!("{}/bff/login?returnUrl=%2F", gw.url);
    for _ in 0..3 {
        assert_eq!(browser.get(&login, &[]).await.status, 302);
    }
    browser
        .get(&login, &[])
        .await
        .assert_problem(429, "rate_limited", &mocks);
    // Health stays unlimited.
    assert_eq!(
        browser
            .get(&format!("{}/healthz", gw.url), &[])
            .await
            .status,
        200
    );
}

/// A confidential client: the gateway authenticates at the token endpoint with its secret (HTTP Basic); a
/// wrong secret is a failed login, not a session. The secret never appears in `/config`.
#[tokio::test]
async fn confidential_clients_authenticate_with_their_secret() {
    let mocks = mocks().await;
    let gw = start_web(&mocks, |c| {
        c.auth.session.client_secret = "s3cr3t:+/=".into()
    })
    .await;
    sessions::register_client(&mocks, &[&gw.url], &gw.url, Some("s3cr3t:+/="));
    let browser = Browser::new();
    browser.login(&gw.url, "7").await;
    assert_eq!(
        browser.api(&format!("{}/api/home", gw.url)).await.status,
        200
    );

    sessions::register_client(&mocks, &[&gw.url], &gw.url, Some("another"));
    let refused = Browser::new();
    let start = refused
        .get(&format!("{}/bff/login?login_hint=7", gw.url), &[])
        .await;
    let authorized = refused.follow(&start).await;
    refused
        .follow(&authorized)
        .await
        .assert_problem(400, "login_failed", &mocks);
    assert!(refused.cookie("bff_session").is_none());
    let mut redacted = serde_json::to_value(bff_core::session::SessionConfig {
        client_secret: "s3cr3t".into(),
        ..Default::default()
    })
    .unwrap();
    bff_core::admin::redact(&mut redacted);
    assert_eq!(redacted["client_secret"], "<redacted>");
}
