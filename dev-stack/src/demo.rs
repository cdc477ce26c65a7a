//! The demo web app: static HTML + JavaScript (no build step) served at `/` and `/app.js` on bff-web's own
//! origin, so the browser's session cookie and the `X-CSRF` header reach the API without CORS. The page logs
//! in (`/bff/login`), shows the composed home screen (`/api/home`), adds a product to the cart
//! (`POST /api/cart/items`) and logs out (`POST /bff/logout`). It never sees a token.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bff_core::BffConfig;

/// The page.
const INDEX: &str = include_str!("../web/index.html");
/// Its script.
const SCRIPT: &str = include_str!("../web/app.js");
/// The page's policy: scripts, styles, fetches and forms on its own origin only; no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   connect-src 'self'; img-src 'self' data:; form-action 'self' http: https:; \
                   base-uri 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The demo app's routes (`/`, `/app.js`), to merge into bff-web's router.
pub fn router() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
}

/// bff-web's `config` with browser sessions on, for a gateway the browser reaches at `public_url`
/// (e.g. `http://localhost:8081`): OpenID discovery on the identity downstream, the callback under
/// `public_url`, the scopes the demo needs.
pub fn with_sessions(mut config: BffConfig, public_url: &str) -> BffConfig {
    config.auth.jwt.discovery = true;
    let session = &mut config.auth.session;
    session.enabled = true;
    session.redirect_uri = format!("{public_url}/bff/callback");
    session.post_logout_redirect_uri = format!("{public_url}/");
    session.scopes = ["openid", "profile", "offline_access", "orders:read"]
        .map(String::from)
        .to_vec();
    config
}

/// Registers bff-web (client `bff-web`) at the dev identity provider for a gateway at `public_url`:
/// its callback, post-logout URI and back-channel logout URI (reached at `backchannel_base`, the gateway's
/// address as the IdP calls it).
pub fn register_client(idp: &mock_services::Idp, public_url: &str, backchannel_base: &str) {
    idp.grants().register(mock_services::oidc::OidcClient {
        client_id: bff_web::AUDIENCE.into(),
        redirect_uris: vec![format!("{public_url}/bff/callback")],
        post_logout_redirect_uris: vec![format!("{public_url}/")],
        backchannel_logout_uri: Some(format!("{backchannel_base}/bff/backchannel-logout")),
        client_secret: None,
    });
}
