//! The admin listener of a gateway (`[admin] listen`, loopback by default): `GET /metrics` (Prometheus text),
//! `GET /healthz`, `GET /readyz` (the same readiness as the public port, including draining), and
//! `GET /config` (the effective configuration, secrets redacted). Nothing here is served on the public port.
//!
//! A gateway crate's `app(config) -> Router` stays the one entry point: while [`capture`] runs it,
//! [`crate::Gateway::into_router`] hands the admin side ([`Admin`]) over to the caller (the command line, a
//! test harness), so no gateway crate needs to know about the admin listener.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::health::Readiness;
use crate::metrics::Metrics;

/// `[admin]`: where the admin endpoints are served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Serve the admin listener at all.
    pub enabled: bool,
    /// Address of the admin listener; keep it on loopback or a private network (it exposes metrics and
    /// the redacted configuration). Gateways default to `127.0.0.1:9081` (web), `9082` (mobile), `9083`
    /// (partner). Not reloadable.
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9080)),
        }
    }
}

/// The admin side of a built gateway.
#[derive(Debug, Clone)]
pub struct Admin {
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    config: Arc<serde_json::Value>,
    /// The gateway's trace exporter, for the flush at shutdown.
    tracer: Option<Arc<crate::otel::Tracer>>,
    /// The in-memory session store, handed to the next build on a reload (sessions survive it).
    session_store: Option<Arc<crate::session::Store>>,
}

impl Admin {
    pub(crate) fn new(
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
        config: &crate::BffConfig,
    ) -> Self {
        let mut value = serde_json::to_value(config).unwrap_or_default();
        redact(&mut value);
        Self {
            metrics,
            readiness,
            config: Arc::new(value),
            tracer: None,
            session_store: None,
        }
    }

    /// The admin side of a gateway keeping browser sessions in `store` (memory), lent to a rebuild.
    pub(crate) fn with_session_store(mut self, store: Option<Arc<crate::session::Store>>) -> Self {
        self.session_store = store;
        self
    }

    /// The in-memory session store of the gateway, if any.
    pub(crate) fn session_store(&self) -> Option<Arc<crate::session::Store>> {
        self.session_store.clone()
    }

    /// The admin side of a gateway exporting traces with `tracer`.
    pub(crate) fn with_tracer(mut self, tracer: Option<Arc<crate::otel::Tracer>>) -> Self {
        self.tracer = tracer;
        self
    }

    /// Exports the spans still queued, waiting at most `bound` (the last step of a graceful shutdown);
    /// immediate when trace export is off.
    pub async fn flush_traces(&self, bound: std::time::Duration) {
        if let Some(tracer) = &self.tracer {
            tracer.flush(bound).await;
        }
    }

    /// The gateway's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The gateway's readiness (shared with the public `/readyz`); draining makes both answer 503.
    pub fn readiness(&self) -> &Arc<Readiness> {
        &self.readiness
    }

    /// The effective configuration with secrets redacted, as served at `/config`.
    pub fn redacted_config(&self) -> &serde_json::Value {
        &self.config
    }

    /// The admin router: `/metrics`, `/healthz`, `/readyz`, `/config`.
    pub fn router(&self) -> Router {
        let config = self.config.clone();
        Router::new()
            .route(
                "/metrics",
                get(crate::metrics::handler).with_state(self.metrics.clone()),
            )
            .route("/healthz", get(crate::health::healthz))
            .route(
                "/readyz",
                get(crate::health::readyz).with_state(self.readiness.clone()),
            )
            .route(
                "/config",
                get(move || async move { axum::Json((*config).clone()) }),
            )
    }
}

/// What a [`capture`] lends the gateway being built (so a rebuilt gateway continues the same series and
/// the same draining state) and collects from it.
#[derive(Debug, Default)]
struct Capture {
    /// The metrics to count into instead of a new registry.
    metrics: Option<Arc<Metrics>>,
    /// The draining flag to share instead of a new one.
    draining: Option<Arc<AtomicBool>>,
    /// The in-memory session store to keep instead of a new (empty) one.
    session_store: Option<Arc<crate::session::Store>>,
    /// The admin side of the gateway built.
    admin: Option<Admin>,
}

thread_local! {
    /// `Some` while [`capture`] runs on this thread.
    static CAPTURED: RefCell<Option<Capture>> = const { RefCell::new(None) };
}

/// Runs `build` (a gateway crate's `app(config)`) and returns its result with the admin side of the gateway
/// it built, if any.
pub fn capture<T>(build: impl FnOnce() -> T) -> (T, Option<Admin>) {
    capture_into(None, None, None, build)
}

/// Like [`capture`], the gateway counting into `metrics`, sharing the `draining` flag and keeping the
/// in-memory `session_store` (a reload).
pub(crate) fn capture_into<T>(
    metrics: Option<Arc<Metrics>>,
    draining: Option<Arc<AtomicBool>>,
    session_store: Option<Arc<crate::session::Store>>,
    build: impl FnOnce() -> T,
) -> (T, Option<Admin>) {
    let lent = Capture {
        metrics,
        draining,
        session_store,
        admin: None,
    };
    let outer = CAPTURED.with(|c| c.borrow_mut().replace(lent));
    let built = build();
    let captured = CAPTURED.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer));
    (built, captured.and_then(|c| c.admin))
}

/// The metrics lent by the enclosing capture, if any.
pub(crate) fn lent_metrics() -> Option<Arc<Metrics>> {
    CAPTURED.with(|c| c.borrow().as_ref().and_then(|c| c.metrics.clone()))
}

/// The draining flag lent by the enclosing capture, if any.
pub(crate) fn lent_draining() -> Option<Arc<AtomicBool>> {
    CAPTURED.with(|c| c.borrow().as_ref().and_then(|c| c.draining.clone()))
}

/// The in-memory session store lent by the enclosing capture, if any.
pub(crate) fn lent_session_store() -> Option<Arc<crate::session::Store>> {
    CAPTURED.with(|c| c.borrow().as_ref().and_then(|c| c.session_store.clone()))
}

/// Hands `admin` to the enclosing [`capture`], if any.
pub(crate) fn offer(admin: Admin) {
    CAPTURED.with(|c| {
        if let Some(capture) = c.borrow_mut().as_mut() {
            capture.admin = Some(admin);
        }
    });
}

/// Key names whose values are secrets (or hashes of secrets): replaced by `"<redacted>"`.
const SECRET_KEYS: &[&str] = &[
    "key_sha256",
    "password",
    "secret",
    "token",
    "api_key",
    "private_key",
    "client_secret",
];

/// Replaces secret values and the credentials inside URLs (`redis://user:pass@host`) in `value`.
pub fn redact(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let secret = SECRET_KEYS
                    .iter()
                    .any(|s| key == s || key.ends_with(&format!("_{s}")));
                if secret && !v.is_null() {
                    *v = serde_json::Value::String("<redacted>".into());
                } else {
                    redact(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        serde_json::Value::String(s) => {
            if let Ok(mut url) = url::Url::parse(s)
                && (url.password().is_some() || !url.username().is_empty())
            {
                let _ = url.set_password(None);
                let _ = url.set_username("");
                *s = format!("{url} (credentials redacted)");
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Secret keys and URL credentials are redacted, everything else is kept.
    #[test]
    fn redacts_secrets() {
        let mut v = serde_json::json!({
            "auth": {"api_keys": [{"key_sha256": "ab", "partner_id": "acme"}]},
            "redis": {"url": "redis://user:hunter2@10.0.0.1:6379/0"},
            "plain": "http://127.0.0.1:7001",
            "client_secret": "s3cr3t",
        });
        redact(&mut v);
        let text = v.to_string();
        assert!(!text.contains("hunter2") && !text.contains("s3cr3t") && !text.contains("\"ab\""));
        assert_eq!(v["auth"]["api_keys"][0]["partner_id"], "acme");
        assert_eq!(v["plain"], "http://127.0.0.1:7001");
        assert!(
            v["redis"]["url"]
                .as_str()
                .unwrap()
                .starts_with("redis://10.0.0.1:6379/0")
        );
    }

    /// `capture` returns what the build offered, and nothing outside a capture leaks into the next one.
    #[test]
    fn capture_hands_over() {
        let admin = Admin::new(
            Arc::new(Metrics::default()),
            Arc::new(Readiness::new(Vec::new(), None)),
            &crate::BffConfig::default(),
        );
        offer(admin.clone());
        let ((), got) = capture(|| ());
        assert!(got.is_none());
        let ((), got) = capture(|| offer(admin));
        assert!(got.is_some());
    }
}
