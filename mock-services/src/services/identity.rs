//! Identity service: `GET /.well-known/openid-configuration` (OpenID discovery), `GET /.well-known/jwks.json`,
//! `POST /token` (a JSON mint request, or a form-encoded `authorization_code` / `refresh_token` grant),
//! `GET /authorize` (dev login page; `login_hint=<user id>` approves at once), `GET /end_session`, and the
//! admin routes `POST /admin/rotate-keys` (body optional: `{"grace_s": N}`), `POST /admin/clients` (register an
//! [`OidcClient`]), `POST /admin/backchannel-logout` (`{"client_id", "sub"?, "sid"?}`: sends a logout token to
//! the client's registered `backchannel_logout_uri`) and `POST /admin/oidc` (`{"access_ttl_s": N}`).

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
use crate::oidc::OidcClient;

pub(super) fn routes(state: &ServiceState) -> Router {
    let scheme = state.scheme();
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route(
            "/.well-known/openid-configuration",
            get(move |idp, uri, headers| discovery(idp, uri, headers, scheme)),
        )
        .route("/token", post(token))
        .route("/authorize", get(authorize))
        .route("/end_session", get(end_session))
        .with_state(state.idp().cloned())
}

pub(super) fn admin_routes(state: &ServiceState) -> Router {
    Router::new()
        .route("/admin/rotate-keys", post(rotate))
        .route("/admin/clients", post(register))
        .route("/admin/backchannel-logout", post(backchannel))
        .route("/admin/oidc", post(settings))
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
        "authorization_endpoint": format!("{base}/authorize"),
        "end_session_endpoint": format!("{base}/end_session"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    }))
    .into_response()
}

async fn token(
    State(idp): State<Option<Idp>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let Some(idp) = idp else { return not_found() };
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form {
        return super::oidc::grant(&idp, &headers, &body);
    }
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

async fn authorize(
    State(idp): State<Option<Idp>>,
    headers: axum::http::HeaderMap,
    query: axum::extract::RawQuery,
) -> Response {
    let Some(idp) = idp else { return not_found() };
    super::oidc::authorize(&idp, &headers, query.0.as_deref().unwrap_or("")).await
}

async fn end_session(
    State(idp): State<Option<Idp>>,
    headers: axum::http::HeaderMap,
    query: axum::extract::RawQuery,
) -> Response {
    let Some(idp) = idp else { return not_found() };
    super::oidc::end_session(&idp, &headers, query.0.as_deref().unwrap_or("")).await
}

async fn register(State(idp): State<Option<Idp>>, body: Bytes) -> Response {
    let Some(idp) = idp else { return not_found() };
    match serde_json::from_slice::<OidcClient>(&body) {
        Ok(client) => {
            idp.grants().register(client.clone());
            Json(client).into_response()
        }
        Err(e) => bad_request(format!("invalid client: {e}")),
    }
}

#[derive(Deserialize)]
struct BackchannelBody {
    client_id: String,
    sub: Option<String>,
    sid: Option<String>,
}

async fn backchannel(State(idp): State<Option<Idp>>, body: Bytes) -> Response {
    let Some(idp) = idp else { return not_found() };
    let req: BackchannelBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return bad_request(format!("invalid body: {e}")),
    };
    let status =
        super::oidc::send_backchannel(&idp, &req.client_id, req.sub.as_deref(), req.sid.as_deref())
            .await;
    match status {
        Ok(status) => Json(serde_json::json!({ "status": status })).into_response(),
        Err(e) => bad_request(e),
    }
}

#[derive(Deserialize)]
struct SettingsBody {
    access_ttl_s: u64,
}

async fn settings(State(idp): State<Option<Idp>>, body: Bytes) -> Response {
    let Some(idp) = idp else { return not_found() };
    match serde_json::from_slice::<SettingsBody>(&body) {
        Ok(b) if (1..=86_400).contains(&b.access_ttl_s) => {
            idp.grants().access_ttl_s = b.access_ttl_s;
            Json(serde_json::json!({ "access_ttl_s": b.access_ttl_s })).into_response()
        }
        Ok(_) => bad_request("access_ttl_s must be in 1..=86400".to_owned()),
        Err(e) => bad_request(format!("invalid body: {e}")),
    }
}
