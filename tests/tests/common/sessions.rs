//! Harness of the browser-session tests: bff-web with `[auth.session]` on (listener bound first, so the
//! callback URL names its real port), registered at the mock IdP, with the demo web app on its origin; and a
//! minimal cookie-keeping "browser" over reqwest that records everything the gateway sent it.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::Duration;

use bff_core::BffConfig;
use mock_services::{Idp, MockStack, Service};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::common::{Reply, client, config_for};

/// bff-web with sessions, serving until dropped.
pub struct SessionGateway {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for SessionGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The mock IdP of `mocks`.
pub fn idp(mocks: &MockStack) -> &Idp {
    mocks
        .handle(Service::Identity)
        .idp()
        .expect("identity mock has an IdP")
}

/// Starts bff-web with sessions on `mocks` (`tweak` adjusts the config), plus the demo app.
pub async fn start_web(mocks: &MockStack, tweak: impl FnOnce(&mut BffConfig)) -> SessionGateway {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let mut config = dev_stack::demo::with_sessions(config_for(bff_web::defaults(), mocks), &url);
    tweak(&mut config);
    let limits = config.server.limits.clone();
    let (router, _admin) = bff_core::admin::capture(|| bff_web::app(config));
    let router = router
        .expect("valid gateway config")
        .merge(dev_stack::demo::router());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        bff_core::server::serve_with_tls(
            listener,
            router,
            async move {
                let _ = stopped.await;
            },
            Duration::from_secs(1),
            &limits,
            None,
        )
        .await
    });
    SessionGateway {
        url,
        stop: Some(stop),
    }
}

/// Registers client `bff-web` at the IdP for the gateways at `urls` (back-channel logout to `backchannel`).
pub fn register(mocks: &MockStack, urls: &[&str], backchannel: &str) {
    register_client(mocks, urls, backchannel, None);
}

/// Like [`register`], a confidential client when `secret` is given.
pub fn register_client(mocks: &MockStack, urls: &[&str], backchannel: &str, secret: Option<&str>) {
    idp(mocks)
        .grants()
        .register(mock_services::oidc::OidcClient {
            client_id: "bff-web".into(),
            redirect_uris: urls.iter().map(|u| format!("{u}/bff/callback")).collect(),
            post_logout_redirect_uris: urls.iter().map(|u| format!("{u}/")).collect(),
            backchannel_logout_uri: Some(format!("{backchannel}/bff/backchannel-logout")),
            client_secret: secret.map(str::to_owned),
        });
}

/// A cookie-keeping client (one jar for every host: cookie names do not collide here) that records every
/// header and body it receives.
pub struct Browser {
    client: reqwest::Client,
    /// Cookies by name.
    pub jar: Mutex<BTreeMap<String, String>>,
    /// Every `Set-Cookie` line received.
    pub set_cookies: Mutex<Vec<String>>,
    /// Every header value and body received.
    pub received: Mutex<Vec<String>>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    /// An empty browser.
    pub fn new() -> Self {
        Self {
            client: client(),
            jar: Mutex::default(),
            set_cookies: Mutex::default(),
            received: Mutex::default(),
        }
    }

    /// The cookie `name`, if set.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().unwrap().get(name).cloned()
    }

    /// Sets cookie `name` (as if planted).
    pub fn set(&self, name: &str, value: &str) {
        self.jar.lock().unwrap().insert(name.into(), value.into());
    }

    /// Sends `method url` with the jar's cookies and `headers` (and an optional form body).
    pub async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: &[(&str, &str)],
        form: Option<String>,
    ) -> Reply {
        let mut request = self.client.request(method, url);
        let cookies: Vec<String> = self
            .jar
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !cookies.is_empty() {
            request = request.header("cookie", cookies.join("; "));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(form) = form {
            request = request
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        for line in headers.get_all("set-cookie") {
            let line = line.to_str().unwrap_or_default().to_owned();
            self.set_cookies.lock().unwrap().push(line.clone());
            let first = line.split(';').next().unwrap_or_default();
            if let Some((name, value)) = first.split_once('=') {
                let deleted = value.is_empty() || line.contains("Max-Age=0");
                let mut jar = self.jar.lock().unwrap();
                if deleted {
                    jar.remove(name);
                } else {
                    jar.insert(name.into(), value.into());
                }
            }
        }
        let body = response.text().await.expect("body");
        {
            let mut received = self.received.lock().unwrap();
            for (name, value) in &headers {
                received.push(format!("{name}: {}", value.to_str().unwrap_or_default()));
            }
            received.push(body.clone());
        }
        Reply {
            status,
            headers,
            body,
        }
    }

    /// GET `url`.
    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Reply {
        self.send(reqwest::Method::GET, url, headers, None).await
    }

    /// GET the `Location` of `reply` (asserting it redirects).
    pub async fn follow(&self, reply: &Reply) -> Reply {
        assert!(
            (300..400).contains(&reply.status),
            "expected a redirect, got {}: {}",
            reply.status,
            reply.body
        );
        let location = reply.header("location").expect("location").to_owned();
        self.get(&location, &[]).await
    }

    /// The whole login of `user` at `gw`, returning the callback's answer.
    pub async fn login(&self, gw: &str, user: &str) -> Reply {
        let start = self
            .get(
                &format!("{gw}/bff/login?returnUrl=%2Fapp&login_hint={user}"),
                &[],
            )
            .await;
        assert_eq!(start.status, 302, "{}", start.body);
        let authorized = self.follow(&start).await;
        assert_eq!(authorized.status, 302, "{}", authorized.body);
        let callback = self.follow(&authorized).await;
        assert_eq!(callback.status, 302, "{}", callback.body);
        assert_eq!(callback.header("location"), Some("/app"));
        callback
    }

    /// GET `url` as the SPA does (`X-CSRF: 1`).
    pub async fn api(&self, url: &str) -> Reply {
        self.get(url, &[("x-csrf", "1")]).await
    }
}

/// Replaces the query parameter `name` of `url` with `value`.
pub fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("url");
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(pairs);
    parsed.to_string()
}
