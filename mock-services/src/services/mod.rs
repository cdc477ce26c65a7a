//! HTTP routes: one module per service, the shared request helpers, and [`router`], which assembles a
//! service's app (its routes behind the recording and fault middleware, plus `/healthz` and the admin
//! API, which are neither recorded nor faulted).

mod cart;
mod catalog;
mod identity;
mod inventory;
mod oidc;
pub(crate) mod order_events;
mod orders;
mod recommendations;
mod reviews;
mod users;

use std::collections::HashMap;

use axum::Router;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::faults::{FaultLayerState, fault_middleware};
use crate::recorder::record_middleware;
use crate::{Service, ServiceState, admin};

/// The complete app of the service `state` belongs to.
pub fn router(state: &ServiceState) -> Router {
    let service = state.service();
    let api = match service {
        Service::Identity => identity::routes(state),
        Service::Users => users::routes(),
        Service::Catalog => catalog::routes(),
        Service::Orders => orders::routes(state.writes())
            .merge(cart::routes(state.writes()))
            .merge(order_events::routes(state)),
        Service::Reviews => reviews::routes(state.writes()),
        Service::Inventory => inventory::routes(),
        Service::Recommendations => recommendations::routes(),
    };
    let fault_state = FaultLayerState {
        faults: state.faults().clone(),
        shutdown: state.shutdown_signal(),
    };
    let api = api
        .route_layer(from_fn_with_state(fault_state, fault_middleware))
        .route_layer(from_fn_with_state(
            state.recorder().clone(),
            record_middleware,
        ));
    let mut app = Router::new().merge(api).merge(admin::routes(state));
    if service == Service::Identity {
        app = app.merge(identity::admin_routes(state));
    }
    if service == Service::Orders {
        app = app.merge(order_events::admin_routes(state));
    }
    app.route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { not_found() })
}

/// `404 {"error":"not_found"}`.
pub(crate) fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": "not_found"})),
    )
        .into_response()
}

/// `400 {"error":"bad_request","detail":...}`.
pub(crate) fn bad_request(detail: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": "bad_request", "detail": detail.into()})),
    )
        .into_response()
}

/// A client error: answered as `400 {"error":"bad_request","detail":...}`.
#[derive(Debug)]
pub(crate) struct BadRequest(pub(crate) String);

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        bad_request(self.0)
    }
}

/// Query parameters by name.
pub(crate) type Params = HashMap<String, String>;

/// The query parameters, or a 400 for an undecodable query string.
pub(crate) fn params(query: Result<Query<Params>, QueryRejection>) -> Result<Params, BadRequest> {
    query
        .map(|Query(p)| p)
        .map_err(|e| BadRequest(e.body_text()))
}

/// An integer parameter in `min..=max`, `default` when absent.
pub(crate) fn int_param(
    params: &Params,
    name: &str,
    default: u32,
    min: u32,
    max: u32,
) -> Result<u32, BadRequest> {
    match params.get(name) {
        None => Ok(default),
        Some(raw) => match raw.trim().parse::<u32>() {
            Ok(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(BadRequest(format!(
                "{name} must be an integer in {min}..={max}"
            ))),
        },
    }
}

/// Maximum number of ids in one batch request.
pub(crate) const MAX_BATCH: usize = 100;

/// The comma-separated `ids` parameter: `None` when absent, 400 when empty or longer than 100.
pub(crate) fn id_list(params: &Params) -> Result<Option<Vec<String>>, BadRequest> {
    let Some(raw) = params.get("ids") else {
        return Ok(None);
    };
    let ids: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if ids.is_empty() {
        return Err(BadRequest("ids must not be empty".to_owned()));
    }
    if ids.len() > MAX_BATCH {
        return Err(BadRequest(format!("at most {MAX_BATCH} ids per request")));
    }
    Ok(Some(ids))
}

/// Serializes `value` as a 200 JSON response, or a 404 when `None`.
pub(crate) fn json_or_404<T: serde::Serialize>(value: Option<T>) -> Response {
    match value {
        Some(v) => axum::Json(v).into_response(),
        None => not_found(),
    }
}

/// The answer of a command: status and JSON body (kept as values so it can be remembered and replayed).
pub(crate) type Answer = (StatusCode, serde_json::Value);

/// `{"error": code, "detail": detail}` with `status`.
pub(crate) fn refused(status: StatusCode, code: &str, detail: &str) -> Answer {
    (status, json!({"error": code, "detail": detail}))
}

/// A 2xx answer carrying `value`.
pub(crate) fn created<T: serde::Serialize>(status: StatusCode, value: &T) -> Answer {
    (
        status,
        serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
    )
}

/// The JSON body of a command, or a 400 naming what is wrong with it (syntax, type, unknown field).
pub(crate) fn body<T>(
    body: Result<axum::Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, Answer> {
    body.map(|axum::Json(v)| v).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "detail": e.body_text()}),
        )
    })
}

/// Header a replayed answer carries.
pub(crate) const REPLAYED_HEADER: &str = "idempotent-replayed";

/// Runs the command `run` once per `Idempotency-Key` (scoped by `scope`, e.g. the route and the caller): a
/// repeated key gets the first answer again, marked `idempotent-replayed: true`, without running the command.
/// Answers of 5xx are not remembered (nothing was written). Without the header, `run` always runs.
pub(crate) fn once(
    writes: &crate::writes::Writes,
    scope: &str,
    headers: &axum::http::HeaderMap,
    run: impl FnOnce(&mut crate::writes::State) -> Answer,
) -> Response {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| format!("{scope} {k}"));
    let mut state = writes.lock();
    if let Some(key) = &key
        && let Some(seen) = state.remembered(key)
    {
        let status = StatusCode::from_u16(seen.status).unwrap_or(StatusCode::OK);
        return (
            status,
            [
                (axum::http::header::CONTENT_TYPE, "application/json"),
                (axum::http::HeaderName::from_static(REPLAYED_HEADER), "true"),
            ],
            seen.body,
        )
            .into_response();
    }
    let (status, value) = run(&mut state);
    let bytes = serde_json::to_vec(&value).unwrap_or_default();
    if let Some(key) = key
        && !status.is_server_error()
    {
        state.remember(
            key,
            crate::writes::Remembered {
                status: status.as_u16(),
                body: bytes.clone(),
            },
        );
    }
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response()
}
