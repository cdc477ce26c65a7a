//! Live order status: `GET /orders/{id}/events[?after=<seq>]` streams the order's status changes as NDJSON
//! (`application/x-ndjson`), one `{"seq": n, "order": {...}}` line per change — first the changes after
//! `after` (or the current order when `after` is absent or unknown), then each change as it happens, until
//! the client leaves, the service shuts down, or the watcher falls more than 256 changes behind. The admin
//! route `POST /admin/orders/{id}/advance` moves an order to its next status (`409 {"error":"final"}` for a
//! delivered or cancelled order) and answers the change.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::broadcast;

use super::{BadRequest, Params, not_found, params};
use crate::ServiceState;
use crate::data::parse_id;
use crate::feed::{AdvanceRefused, OrderChange};
use crate::state::Shutdown;

/// `GET /orders/{id}/events` (recorded and faulted like every service route).
pub(super) fn routes(state: &ServiceState) -> Router {
    Router::new()
        .route("/orders/{id}/events", get(events))
        .with_state(state.clone())
}

/// `POST /admin/orders/{id}/advance` (neither recorded nor faulted).
pub(crate) fn admin_routes(state: &ServiceState) -> Router {
    Router::new()
        .route("/admin/orders/{id}/advance", post(advance))
        .with_state(state.clone())
}

/// An order id of a path or message, `None` when malformed.
pub(crate) fn order_id(raw: &str) -> Option<u64> {
    parse_id(raw, u32::MAX).map(u64::from)
}

async fn advance(State(state): State<ServiceState>, Path(id): Path<String>) -> Response {
    let Some(id) = order_id(&id) else {
        return not_found();
    };
    match state.writes().lock().advance_order(id) {
        None => not_found(),
        Some(Ok(change)) => Json(change).into_response(),
        Some(Err(AdvanceRefused::Final)) => (
            StatusCode::CONFLICT,
            Json(json!({"error": "final", "detail": "the order's status is final"})),
        )
            .into_response(),
    }
}

async fn events(
    State(state): State<ServiceState>,
    Path(id): Path<String>,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Response, BadRequest> {
    let params = params(query)?;
    let after = match params.get("after") {
        None => None,
        Some(raw) => Some(
            raw.parse::<u64>()
                .map_err(|_| BadRequest("after must be a non-negative integer".to_owned()))?,
        ),
    };
    let Some(id) = order_id(&id) else {
        return Ok(not_found());
    };
    let Some(watch) = Watch::start(&state, id, after) else {
        return Ok(not_found());
    };
    let stream = futures::stream::unfold(watch, |mut w| async move {
        let change = w.next().await?;
        Some((Ok::<_, Infallible>(line(&change)), w))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// One watcher's position: the changes still to send first, then the broadcast (shared by the NDJSON stream
/// and the gRPC `WatchOrder`).
pub(crate) struct Watch {
    id: String,
    first: std::vec::IntoIter<OrderChange>,
    receiver: broadcast::Receiver<OrderChange>,
    shutdown: Shutdown,
}

impl Watch {
    /// Watches order `id` (the changes after `after` first, see [`crate::feed::OrderFeed::watch`]); `None`
    /// for an unknown order.
    pub(crate) fn start(state: &ServiceState, id: u64, after: Option<u64>) -> Option<Self> {
        let (first, receiver) = {
            let writes = state.writes().lock();
            let current = writes.current_order(id)?;
            writes.feed().watch(id, current, after)
        };
        Some(Self {
            id: id.to_string(),
            first: first.into_iter(),
            receiver,
            shutdown: state.shutdown_signal(),
        })
    }

    /// The next change of the watched order; `None` ends the stream.
    pub(crate) async fn next(&mut self) -> Option<OrderChange> {
        if let Some(change) = self.first.next() {
            return Some(change);
        }
        loop {
            let received = tokio::select! {
                r = self.receiver.recv() => r,
                () = self.shutdown.wait() => return None,
            };
            match received {
                Ok(change) if change.order.id == self.id => return Some(change),
                Ok(_) => {}
                // Lagged or closed: the watcher reconnects with `after`.
                Err(_) => return None,
            }
        }
    }
}

fn line(change: &OrderChange) -> Bytes {
    let mut bytes = serde_json::to_vec(change).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}
