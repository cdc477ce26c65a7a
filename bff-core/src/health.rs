//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: not draining, and every required
//! downstream answers). On shutdown the gateway starts draining: readiness answers 503 at once, so load
//! balancers stop sending new requests before the listener closes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::downstream::Downstream;
use crate::error::BffError;

/// How long readiness waits for each downstream.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What `/readyz` checks: the required downstreams, and whether the gateway is draining.
#[derive(Debug)]
pub struct Readiness {
    required: Vec<Downstream>,
    /// Shared by every build of the gateway across reloads.
    draining: Arc<AtomicBool>,
}

impl Readiness {
    /// Readiness probing `required`, draining with `draining` (a new flag when `None`).
    pub(crate) fn new(required: Vec<Downstream>, draining: Option<Arc<AtomicBool>>) -> Self {
        Self {
            required,
            draining: draining.unwrap_or_default(),
        }
    }

    /// The draining flag (shared with rebuilt gateways on reload).
    pub(crate) fn draining_flag(&self) -> Arc<AtomicBool> {
        self.draining.clone()
    }

    /// From now on `/readyz` answers 503 (shutdown has begun).
    pub fn start_draining(&self) {
        if !self.draining.swap(true, Ordering::SeqCst) {
            tracing::info!("draining: readiness now fails");
        }
    }

    /// Whether the gateway is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// `GET /healthz`: always 200 while the process serves.
pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when not draining and every required downstream answers, else 503 `not_ready` (the
/// failing names are logged, not sent).
pub(crate) async fn readyz(State(readiness): State<std::sync::Arc<Readiness>>) -> Response {
    if readiness.is_draining() {
        return BffError::NotReady.into_response();
    }
    let probes = readiness
        .required
        .iter()
        .map(|d| async move { (d.name(), d.is_reachable(PROBE_TIMEOUT).await) });
    let results = futures::future::join_all(probes).await;
    let failing: Vec<&str> = results
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(n, _)| *n)
        .collect();
    if failing.is_empty() {
        Json(json!({"status": "ready"})).into_response()
    } else {
        tracing::warn!(?failing, "not ready: downstreams unreachable");
        BffError::NotReady.into_response()
    }
}
