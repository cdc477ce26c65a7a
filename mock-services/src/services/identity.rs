//! Identity service: `GET /.well-known/jwks.json`, `POST /token`, and the admin route
//! `POST /admin/rotate-keys` (body optional: `{"grace_s": N}`).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{bad_request, not_found};
use crate::ServiceState;
use crate::idp::{Idp, MintRequest};

pub(super) fn routes(state: &ServiceState) -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/token", post(token))
        .with_state(state.idp().cloned())
}

pub(super) fn admin_routes(state: &ServiceState) -> Router {
    Router::new()
        .route("/admin/rotate-keys", post(rotate))
        .with_state(state.idp().cloned())
}

async fn jwks(State(idp): State<Option<Idp>>) -> Response {
    let Some(idp) = idp else { return not_found() };
    let mut response = Json(idp.jwks()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=60"),
    );
    response
}

async fn token(State(idp): State<Option<Idp>>, body: Bytes) -> Response {
    let Some(idp) = idp else { return not_found() };
    let req: MintRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(format!("invalid token request: {e}")),
    };
    match idp.mint(&req) {
        Ok(t) => Json(t).into_response(),
        Err(e) => bad_request(e.0),
    }
}

#[derive(Deserialize)]
struct RotateBody {
    grace_s: Option<u64>,
}

async fn rotate(State(idp): State<Option<Idp>>, body: Bytes) -> Response {
    let Some(idp) = idp else { return not_found() };
    let grace = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice::<RotateBody>(&body) {
            Ok(b) => b.grace_s.map(Duration::from_secs),
            Err(e) => return bad_request(format!("invalid body: {e}")),
        }
    };
    Json(idp.rotate(grace)).into_response()
}
