//! The session endpoints a SPA uses (all answers `Cache-Control: no-store`; no token in any of them):
//!
//! - `GET /bff/login?returnUrl=/path` — starts the authorization code flow (PKCE S256, `state`, `nonce`):
//!   302 to the provider; `returnUrl` must be a local path (no open redirect);
//! - `GET /bff/callback?code=&state=` — the provider's answer: state checked against the login cookie,
//!   single use; code redeemed with the PKCE verifier; ID token verified (signature, `iss`, `aud`, `exp`,
//!   `nonce`); a new session id (any previous session of the browser ends); 302 to `returnUrl`;
//! - `GET /bff/user` (`X-CSRF: 1`) — the user's claims, 401 `session_expired` without a session;
//! - `POST /bff/logout` (allowed `Origin`) — ends the session, then 303 to the provider's `end_session`;
//! - `POST /bff/backchannel-logout` — a provider's logout token (form `logout_token`): the sessions it names
//!   end, on every instance sharing the store.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::store::{PendingLogin, Session};
use super::{Sessions, now, random_token, session_expired, store_key, store_unavailable};
use crate::error::BffError;

/// The router of the session endpoints.
pub(crate) fn router(sessions: Arc<Sessions>) -> Router {
    Router::new()
        .route("/bff/login", get(login))
        .route("/bff/callback", get(callback))
        .route("/bff/user", get(user))
        .route("/bff/logout", post(logout))
        .route("/bff/backchannel-logout", post(backchannel_logout))
        .with_state(sessions)
}

fn bad(code: &'static str, detail: &'static str) -> BffError {
    BffError::Refused {
        status: StatusCode::BAD_REQUEST,
        code,
        detail,
    }
}

fn login_failed() -> BffError {
    bad(
        "login_failed",
        "the login could not be completed; start again at /bff/login",
    )
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn redirect(status: StatusCode, location: &str) -> Response {
    let mut response = status.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    no_store(response)
}

/// Whether `url` is a local path of this site: starts with one `/`, no `\`, no control characters, and
/// stays on the same origin when resolved (so `//evil`, `/\evil`, `/%09/evil` are refused).
pub(crate) fn is_local_path(url: &str) -> bool {
    if !url.starts_with('/')
        || url.starts_with("//")
        || url.len() > 2048
        || url
            .bytes()
            .any(|b| b == b'\\' || b.is_ascii_control() || b == b' ')
    {
        return false;
    }
    let base = url::Url::parse("https://local.invalid/").ok();
    base.and_then(|b| b.join(url).ok())
        .is_some_and(|u| u.host_str() == Some("local.invalid") && u.scheme() == "https")
}

#[derive(Debug, Deserialize, Default)]
struct LoginQuery {
    #[serde(rename = "returnUrl", default)]
    return_url: Option<String>,
    #[serde(default)]
    login_hint: Option<String>,
}

/// `GET /bff/login?returnUrl=`: 302 to the provider's authorization endpoint.
async fn login(State(s): State<Arc<Sessions>>, RawQuery(query): RawQuery) -> Response {
    let query: LoginQuery = match serde_urlencoded::from_str(query.as_deref().unwrap_or("")) {
        Ok(q) => q,
        Err(_) => return bad("bad_request", "malformed query").into_response(),
    };
    let return_url = query.return_url.unwrap_or_else(|| "/".to_owned());
    if !is_local_path(&return_url) {
        return bad(
            "invalid_return_url",
            "returnUrl must be a local path such as /app",
        )
        .into_response();
    }
    let endpoints = match s.provider.endpoints().await {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    let state = random_token();
    let pending = PendingLogin {
        nonce: random_token(),
        verifier: random_token(),
        return_url,
    };
    let ttl = Duration::from_secs(s.config.login_timeout_s);
    if let Err(e) = s.store.put_pending(&store_key(&state), &pending, ttl).await {
        return store_unavailable(&e).into_response();
    }
    let challenge = crate::session::pkce_challenge(&pending.verifier);
    let scope = s.config.scopes.join(" ");
    let mut params = form_urlencoded::Serializer::new(String::new());
    params
        .append_pair("response_type", "code")
        .append_pair("client_id", &s.client_id)
        .append_pair("redirect_uri", &s.config.redirect_uri)
        .append_pair("scope", &scope)
        .append_pair("state", &state)
        .append_pair("nonce", &pending.nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    if let Some(hint) = query.login_hint.filter(|h| crate::auth::is_header_safe(h)) {
        params.append_pair("login_hint", &hint);
    }
    let separator = if endpoints.authorization_endpoint.contains('?') {
        '&'
    } else {
        '?'
    };
    let location = format!(
        "{}{separator}{}",
        endpoints.authorization_endpoint,
        params.finish()
    );
    let mut response = redirect(StatusCode::FOUND, &location);
    // The login cookie binds the flow to this browser: a callback with another browser's state fails.
    response.headers_mut().append(
        header::SET_COOKIE,
        s.set_cookie(&s.login_cookie, &state, s.config.login_timeout_s),
    );
    response
}

#[derive(Debug, Deserialize, Default)]
struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// `GET /bff/callback`: completes the login, or 400 `login_failed` (nothing created).
async fn callback(
    State(s): State<Arc<Sessions>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let clear_login = s.set_cookie(&s.login_cookie, "", 0);
    let mut response = match complete_login(&s, &headers, query.as_deref().unwrap_or("")).await {
        Ok((value, return_url)) => {
            let mut response = redirect(StatusCode::FOUND, &return_url);
            let max_age = s.config.absolute_timeout_s;
            response
                .headers_mut()
                .append(header::SET_COOKIE, s.set_cookie(&s.cookie, &value, max_age));
            response
        }
        Err(e) => no_store(e.into_response()),
    };
    response
        .headers_mut()
        .append(header::SET_COOKIE, clear_login);
    response
}

/// The checks and the token exchange of a callback: the new session's cookie value and where to go.
async fn complete_login(
    s: &Sessions,
    headers: &HeaderMap,
    query: &str,
) -> Result<(String, String), BffError> {
    let query: CallbackQuery = serde_urlencoded::from_str(query).map_err(|_| login_failed())?;
    let state = query
        .state
        .filter(|v| !v.is_empty())
        .ok_or_else(login_failed)?;
    let bound = Sessions::cookie_value(headers, &s.login_cookie).unwrap_or("");
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        state.as_bytes(),
        bound.as_bytes(),
    )) {
        tracing::info!("login callback refused: state does not match this browser's login");
        return Err(login_failed());
    }
    // Single use: taken whatever happens next.
    let pending = s
        .store
        .take_pending(&store_key(&state))
        .await
        .map_err(|e| store_unavailable(&e))?
        .ok_or_else(|| {
            tracing::info!("login callback refused: unknown, used or expired state");
            login_failed()
        })?;
    if let Some(error) = &query.error {
        tracing::info!(error = %error.chars().take(64).collect::<String>(), "identity provider refused the login");
        return Err(login_failed());
    }
    let code = query
        .code
        .filter(|c| !c.is_empty())
        .ok_or_else(login_failed)?;
    let tokens = s
        .provider
        .redeem_code(&code, &pending.verifier, &s.config.redirect_uri)
        .await
        .map_err(|e| match e {
            super::oidc::TokenError::Refused => login_failed(),
            super::oidc::TokenError::Unavailable => BffError::Refused {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "identity_provider_unavailable",
                detail: "the identity provider cannot be reached; try again later",
            },
        })?;
    let id_token = tokens.id_token.as_deref().ok_or_else(login_failed)?;
    let claims = super::oidc::verify_id_token(&s.verifier, id_token, &s.client_id, &pending.nonce)
        .await
        .map_err(|e| {
            tracing::info!(reason = %e, "ID token refused");
            login_failed()
        })?;
    let identity = s.verifier.verify(&tokens.access_token).await.map_err(|e| {
        tracing::info!(reason = %e, "access token of a login refused");
        login_failed()
    })?;
    if identity.subject != claims.sub {
        return Err(login_failed());
    }
    // A new id at every login (no fixation); any session the browser had ends.
    if let Some(old) = s.session_cookie(headers) {
        let _ = s.store.delete(&store_key(old)).await;
    }
    // `sub` always; the other configured claims when the ID token has them.
    let mut user: serde_json::Map<String, serde_json::Value> = claims
        .all
        .iter()
        .filter(|(k, _)| s.config.user_claims.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    user.insert("sub".into(), claims.sub.clone().into());
    let now = now();
    let session = Session {
        sub: claims.sub,
        sid: claims.sid,
        claims: user,
        access_expires_at: super::unverified_exp(&tokens.access_token),
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        created_at: now,
        touched_at: now,
    };
    let value = random_token();
    s.keep(&store_key(&value), &session).await?;
    tracing::info!(subject = %session.sub, "session started");
    Ok((value, pending.return_url))
}

/// `GET /bff/user`: the session user's claims (never a token).
async fn user(State(s): State<Arc<Sessions>>, method: Method, headers: HeaderMap) -> Response {
    let result = async {
        s.check_forgery(&method, &headers)?;
        let value = s.session_cookie(&headers).ok_or_else(session_expired)?;
        let session = s.live_session(&store_key(value)).await?;
        let expires_in = session
            .created_at
            .saturating_add(s.config.absolute_timeout_s)
            .saturating_sub(now());
        Ok::<_, BffError>(serde_json::json!({
            "claims": session.claims,
            "session_expires_in": expires_in,
        }))
    }
    .await;
    no_store(match result {
        Ok(body) => axum::Json(body).into_response(),
        Err(e) => e.into_response(),
    })
}

/// `POST /bff/logout`: ends the session (if any), clears the cookie, 303 to the provider's end-session
/// endpoint (or the post-logout URI). Needs an allowed `Origin` (a cross-site form cannot log a user out).
async fn logout(State(s): State<Arc<Sessions>>, headers: HeaderMap) -> Response {
    if let Err(e) = s.check_origin(&headers) {
        return no_store(e.into_response());
    }
    if let Some(value) = s.session_cookie(&headers)
        && let Err(e) = s.store.delete(&store_key(value)).await
    {
        return no_store(store_unavailable(&e).into_response());
    }
    let after = s.config.post_logout_uri();
    let location = match s
        .provider
        .endpoints()
        .await
        .ok()
        .and_then(|e| e.end_session_endpoint.clone())
    {
        Some(end) => {
            let params = form_urlencoded::Serializer::new(String::new())
                .append_pair("client_id", &s.client_id)
                .append_pair("post_logout_redirect_uri", &after)
                .finish();
            let separator = if end.contains('?') { '&' } else { '?' };
            format!("{end}{separator}{params}")
        }
        None => after,
    };
    let mut response = redirect(StatusCode::SEE_OTHER, &location);
    response
        .headers_mut()
        .append(header::SET_COOKIE, s.set_cookie(&s.cookie, "", 0));
    response
}

#[derive(Debug, Deserialize)]
struct LogoutForm {
    logout_token: String,
}

/// `POST /bff/backchannel-logout`: 200 when the logout token is valid (its sessions ended), 400
/// `invalid_logout_token` otherwise.
async fn backchannel_logout(State(s): State<Arc<Sessions>>, body: Bytes) -> Response {
    let result = async {
        let invalid = || {
            bad(
                "invalid_logout_token",
                "the logout token is missing or not valid",
            )
        };
        let form: LogoutForm = serde_urlencoded::from_bytes(&body).map_err(|_| invalid())?;
        let claims =
            super::oidc::verify_logout_token(&s.verifier, &form.logout_token, &s.client_id)
                .await
                .map_err(|e| {
                    tracing::info!(reason = %e, "logout token refused");
                    invalid()
                })?;
        let ended = s
            .store
            .delete_matching(claims.sub.as_deref(), claims.sid.as_deref())
            .await
            .map_err(|e| store_unavailable(&e))?;
        tracing::info!(ended, "back-channel logout");
        Ok::<_, BffError>(())
    }
    .await;
    no_store(match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    })
}

#[cfg(test)]
mod tests {
    use super::is_local_path;

    #[test]
    fn only_local_paths_are_return_urls() {
        for ok in ["/", "/app", "/app?x=1#y", "/a/b%20c"] {
            assert!(is_local_path(ok), "{ok}");
        }
        for bad in [
            "",
            "app",
            "//evil.example",
            "/\\evil.example",
            "https://evil.example/",
            "/\tevil",
            "\\\\evil",
            "/ /evil",
            "javascript:alert(1)",
        ] {
            assert!(!is_local_path(bad), "{bad}");
        }
    }
}
