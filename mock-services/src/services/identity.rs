//! Identity service: `GET /.well-known/openid-configuration` (OpenID discovery: `issuer`, `jwks_uri`),
//! `GET /.well-known/jwks.json`, `POST /token`, and the admin route
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
    let scheme = state.scheme();
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route(
            "/.well-known/openid-configuration",
            get(move |idp, uri, headers| discovery(idp, uri, headers, scheme)),
        )
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

/// The OpenID Provider metadata: `jwks_uri` is the configured one, else this host's JWKS (from the request's
/// authority or `Host`).
async fn discovery(
    State(idp): State<Option<Idp>>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    scheme: &'static str,
) -> Response {
    let Some(idp) = idp else { return not_found() };
    let host = uri.authority().map(|a| a.as_str().to_owned()).or_else(|| {
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
    });
    let base = match host {
        Some(host) => format!("{scheme}://{host}"),
        None => return bad_request("Host header required".to_owned()),
    };
    let jwks_uri = idp
        .config()
        .jwks_uri
        .clone()
        .unwrap_or_else(|| format!("{base}/.well-known/jwks.json"));
    Json(serde_json::json!({
        "issuer": idp.config().issuer,
        "jwks_uri": jwks_uri,
        "token_endpoint": format!("{base}/token"),
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    }))
    .into_response()
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
