//! The dev IdP's browser- and client-facing OpenID Connect endpoints: `authorize` (dev login page, or
//! approval at once with `login_hint`), the form-encoded token grants, `end_session`, and sending a
//! back-channel logout token.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use crate::idp::Idp;
use crate::oidc::{AuthorizeRequest, Grants, OAuthError, new_sid};

/// The IdP's own session cookie (which IdP session `end_session` ends).
const SESSION_COOKIE: &str = "idp_sid";

fn oauth_error(status: StatusCode, e: &OAuthError) -> Response {
    let mut response = (
        status,
        axum::Json(serde_json::json!({"error": e.error, "error_description": e.description})),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font-family:sans-serif;max-width:32rem;margin:3rem auto}}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>"
    );
    (status, Html(html)).into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn redirect(location: &str) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = base.to_owned();
    for (i, (k, v)) in pairs.iter().enumerate() {
        url.push(if i == 0 && !base.contains('?') {
            '?'
        } else {
            '&'
        });
        url.push_str(k);
        url.push('=');
        url.push_str(&form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>());
    }
    url
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// `GET /authorize`: checks the client and redirect URI (errors shown, never redirected), then the request
/// (errors redirected to the client); with a `login_hint` naming an existing user, approves at once (dev
/// only) and redirects with a single-use code; without one, shows the dev login page.
pub(super) async fn authorize(idp: &Idp, headers: &HeaderMap, query: &str) -> Response {
    let req: AuthorizeRequest = match serde_urlencoded::from_str(query) {
        Ok(r) => r,
        Err(_) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Bad request",
                "<p>The authorization request is malformed.</p>",
            );
        }
    };
    if let Err(e) = idp.grants().check_client(&req) {
        return page(
            StatusCode::BAD_REQUEST,
            "Bad request",
            &format!("<p>{}: {}</p>", e.error, escape(&e.description)),
        );
    }
    let state = req.state.clone().unwrap_or_default();
    if let Err(e) = Grants::check_request(&req) {
        return redirect(&with_query(
            &req.redirect_uri,
            &[
                ("error", e.error),
                ("error_description", &e.description),
                ("state", &state),
            ],
        ));
    }
    let Some(user) = req.login_hint.as_deref().filter(|u| !u.is_empty()) else {
        return login_page(query);
    };
    let known = user
        .parse::<u32>()
        .is_ok_and(crate::data::users::user_exists);
    if !known {
        return redirect(&with_query(
            &req.redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "unknown user"),
                ("state", &state),
            ],
        ));
    }
    let sid = new_sid();
    let code = idp.grants().approve(&req, user, &sid);
    let mut response = redirect(&with_query(
        &req.redirect_uri,
        &[("code", &code), ("state", &state)],
    ));
    let _ = headers;
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={sid}; Path=/; HttpOnly; SameSite=Lax"
    )) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// The dev login page: pick a user; the form repeats the authorization request with a `login_hint`.
fn login_page(query: &str) -> Response {
    let hidden: String = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k != "login_hint")
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape(&k),
                escape(&v)
            )
        })
        .collect();
    let options: String = (1..=10u32)
        .map(|id| {
            let name = crate::idp::display_name(&id.to_string());
            format!("<option value=\"{id}\">{id}: {}</option>", escape(&name))
        })
        .collect();
    page(
        StatusCode::OK,
        "Dev identity provider",
        &format!(
            "<p>Development only: choose who you are. No password.</p>\
             <form method=\"get\" action=\"/authorize\">{hidden}\
             <label>User <select id=\"user\" name=\"login_hint\">{options}</select></label> \
             <button id=\"sign-in\" type=\"submit\">Sign in</button></form>"
        ),
    )
}

#[derive(Deserialize)]
struct GrantForm {
    grant_type: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    code_verifier: String,
    #[serde(default)]
    refresh_token: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
}

/// The client a token request authenticates as: `Authorization: Basic` (`client_secret_basic`) or the form's
/// `client_id` (+ `client_secret`); a confidential client's secret must match.
fn client_of(idp: &Idp, headers: &HeaderMap, form: &GrantForm) -> Option<String> {
    use base64::Engine as _;
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            let decode = |s: &str| {
                form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((decode(id)?, Some(decode(secret)?)))
        });
    let (id, secret) =
        basic.unwrap_or_else(|| (form.client_id.clone(), form.client_secret.clone()));
    let grants = idp.grants();
    let client = grants.client(&id)?;
    match &client.client_secret {
        None => Some(id),
        Some(expected) if secret.as_deref() == Some(expected.as_str()) => Some(id),
        Some(_) => None,
    }
}

/// `POST /token` with a form body: the `authorization_code` (PKCE S256, single-use code) and
/// `refresh_token` (rotating) grants. Public clients: `client_id` in the body; confidential clients:
/// `client_secret_basic` or `client_secret_post`.
pub(super) fn grant(idp: &Idp, headers: &HeaderMap, body: &[u8]) -> Response {
    let form: GrantForm = match serde_urlencoded::from_bytes(body) {
        Ok(f) => f,
        Err(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                &OAuthError {
                    error: "invalid_request",
                    description: "malformed token request".into(),
                },
            );
        }
    };
    let Some(client_id) = client_of(idp, headers, &form) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            &OAuthError {
                error: "invalid_client",
                description: "unknown client or wrong secret".into(),
            },
        );
    };
    let issued = match form.grant_type.as_str() {
        "authorization_code" => idp.grants().redeem_code(
            &form.code,
            &client_id,
            &form.redirect_uri,
            &form.code_verifier,
        ),
        "refresh_token" => idp.grants().redeem_refresh(&form.refresh_token, &client_id),
        _ => Err(OAuthError {
            error: "unsupported_grant_type",
            description: "use authorization_code or refresh_token".into(),
        }),
    };
    match issued.map(|i| idp.issue(&i)) {
        Ok(Ok(tokens)) => {
            let mut response = axum::Json(tokens).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Ok(Err(e)) => super::bad_request(e.0),
        Err(e) => oauth_error(StatusCode::BAD_REQUEST, &e),
    }
}

#[derive(Deserialize, Default)]
struct EndSessionQuery {
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    post_logout_redirect_uri: Option<String>,
    #[serde(default)]
    state: Option<String>,
}

/// `GET /end_session`: ends the IdP session of the browser (its refresh tokens stop working, and every
/// client with a back-channel logout URI is told), then redirects to a registered
/// `post_logout_redirect_uri` or shows a signed-out page.
pub(super) async fn end_session(idp: &Idp, headers: &HeaderMap, query: &str) -> Response {
    let q: EndSessionQuery = serde_urlencoded::from_str(query).unwrap_or_default();
    let sid = cookie(headers, SESSION_COOKIE).filter(|s| !s.is_empty());
    if let Some(sid) = &sid {
        idp.grants().end_session(sid);
        let clients: Vec<String> = idp
            .grants()
            .clients()
            .filter(|c| c.backchannel_logout_uri.is_some())
            .map(|c| c.client_id.clone())
            .collect();
        for client in clients {
            if let Err(e) = send_backchannel(idp, &client, None, Some(sid)).await {
                tracing::warn!(client, error = %e, "back-channel logout not delivered");
            }
        }
    }
    let allowed = q.post_logout_redirect_uri.as_ref().filter(|uri| {
        idp.grants()
            .client(&q.client_id)
            .is_some_and(|c| c.post_logout_redirect_uris.contains(uri))
    });
    let mut response = match allowed {
        Some(uri) => {
            let state = q.state.unwrap_or_default();
            if state.is_empty() {
                redirect(uri)
            } else {
                redirect(&with_query(uri, &[("state", &state)]))
            }
        }
        None => page(StatusCode::OK, "Signed out", "<p>You are signed out.</p>"),
    };
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("idp_sid=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"),
    );
    response
}

/// Signs a logout token for `client_id` (naming `sub` and/or `sid`) and POSTs it to the client's registered
/// `backchannel_logout_uri`; the HTTP status the client answered.
pub(super) async fn send_backchannel(
    idp: &Idp,
    client_id: &str,
    sub: Option<&str>,
    sid: Option<&str>,
) -> Result<u16, String> {
    if sub.is_none() && sid.is_none() {
        return Err("name a sub or a sid".into());
    }
    let uri = idp
        .grants()
        .client(client_id)
        .and_then(|c| c.backchannel_logout_uri.clone())
        .ok_or_else(|| "client has no backchannel_logout_uri".to_owned())?;
    let token = idp.logout_token(client_id, sub, sid).map_err(|e| e.0)?;
    let request = axum::http::Request::post(uri.as_str())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(format!("logout_token={token}"))))
        .map_err(|_| "backchannel_logout_uri is not a valid URI".to_owned())?;
    // Plain HTTP only, like every relying party of the dev IdP; one connection per delivery (a logout is rare).
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = tokio::time::timeout(std::time::Duration::from_secs(5), client.request(request))
        .await
        .map_err(|_| "delivery timed out".to_owned())?
        .map_err(|e| format!("delivery failed: {e}"))?;
    Ok(response.status().as_u16())
}
