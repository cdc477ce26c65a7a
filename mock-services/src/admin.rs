//! The admin API every service has (never recorded, never faulted):
//! `GET|PUT|POST|DELETE /admin/faults` and `GET|DELETE /admin/received`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;

use crate::ServiceState;
use crate::faults::FaultRule;
use crate::services::BadRequest;

pub(crate) fn routes(state: &ServiceState) -> Router {
    Router::new()
        .route(
            "/admin/faults",
            get(list_faults)
                .put(replace_faults)
                .post(add_fault)
                .delete(clear_faults),
        )
        .route("/admin/received", get(received).delete(reset_received))
        .with_state(state.clone())
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, BadRequest> {
    serde_json::from_slice(body).map_err(|e| BadRequest(format!("invalid fault rule JSON: {e}")))
}

fn validate(rules: &[FaultRule]) -> Result<(), BadRequest> {
    rules
        .iter()
        .try_for_each(|r| r.validate().map_err(BadRequest))
}

async fn list_faults(State(state): State<ServiceState>) -> Json<Vec<FaultRule>> {
    Json(state.faults().list())
}

async fn replace_faults(
    State(state): State<ServiceState>,
    body: Bytes,
) -> Result<Response, BadRequest> {
    let rules: Vec<FaultRule> = parse(&body)?;
    validate(&rules)?;
    state.faults().set(rules);
    Ok(Json(state.faults().list()).into_response())
}

async fn add_fault(State(state): State<ServiceState>, body: Bytes) -> Result<Response, BadRequest> {
    let rule: FaultRule = parse(&body)?;
    validate(std::slice::from_ref(&rule))?;
    state.faults().push(rule);
    Ok((StatusCode::CREATED, Json(state.faults().list())).into_response())
}

async fn clear_faults(State(state): State<ServiceState>) -> StatusCode {
    state.faults().clear();
    StatusCode::NO_CONTENT
}

async fn received(State(state): State<ServiceState>) -> Json<serde_json::Value> {
    Json(state.recorder().snapshot().to_json())
}

async fn reset_received(State(state): State<ServiceState>) -> StatusCode {
    state.recorder().reset();
    StatusCode::NO_CONTENT
}
