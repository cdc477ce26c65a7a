//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: every required downstream answers).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::downstream::Downstream;
use crate::error::BffError;

/// How long readiness waits for each downstream.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// `GET /healthz`: always 200 while the process serves.
pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when every required downstream answers, else 503 `not_ready` (the failing names are
/// logged, not sent).
pub(crate) async fn readyz(State(required): State<std::sync::Arc<Vec<Downstream>>>) -> Response {
    let probes = required
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
