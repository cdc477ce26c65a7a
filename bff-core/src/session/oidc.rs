//! The OpenID Connect client side of browser sessions: the provider's endpoints from discovery on the identity
//! downstream, the token requests (authorization code with PKCE, refresh), and the checks of the ID token and
//! of back-channel logout tokens (signature by the JWKS the bearer tokens are verified with, `iss`, `aud`,
//! `exp`, plus `nonce` / `events`).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use crate::auth::JwtVerifier;
use crate::auth::discovery::DISCOVERY_PATH;
use crate::context::RequestContext;
use crate::downstream::Downstream;
use crate::error::BffError;
use crate::trace::TraceContext;

/// The `events` member a logout token must carry.
pub(crate) const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Longest a token request may take when the caller has no deadline of its own.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(5);

/// The provider endpoints this client uses.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Endpoints {
    issuer: String,
    /// Where the browser is sent to log in.
    pub(crate) authorization_endpoint: String,
    token_endpoint: String,
    /// Where the browser is sent to end the provider's session, if the provider has one.
    #[serde(default)]
    pub(crate) end_session_endpoint: Option<String>,
}

/// A token endpoint answer.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenSet {
    /// The access token.
    pub(crate) access_token: String,
    /// A (rotated) refresh token.
    #[serde(default)]
    pub(crate) refresh_token: Option<String>,
    /// The ID token (always on the code grant).
    #[serde(default)]
    pub(crate) id_token: Option<String>,
}

/// Why a token request failed.
#[derive(Debug)]
pub(crate) enum TokenError {
    /// The provider refused the grant (4xx): the code or refresh token is not valid.
    Refused,
    /// The provider could not be asked (down, slow, malformed answer).
    Unavailable,
}

/// The identity provider, as an OAuth client sees it.
#[derive(Debug)]
pub(crate) struct Provider {
    identity: Downstream,
    issuer: String,
    client_id: String,
    /// `Authorization: Basic …` of a confidential client.
    basic: Option<axum::http::HeaderValue>,
    endpoints: RwLock<Option<Arc<Endpoints>>>,
}

/// A context for a call the gateway makes on its own behalf (no caller identity is sent).
pub(crate) fn own_context(kind: &str) -> RequestContext {
    RequestContext::new(
        format!("{kind}-{}", crate::trace::new_request_id()),
        TraceContext::from_headers(&Default::default()),
        None,
        Instant::now() + TOKEN_TIMEOUT,
    )
}

impl Provider {
    /// The provider behind `identity` (discovery must announce `issuer`), for client `client_id`
    /// (confidential when `client_secret` is not empty).
    pub(crate) fn new(
        identity: Downstream,
        issuer: String,
        client_id: String,
        client_secret: &str,
    ) -> Self {
        use base64::Engine as _;
        // RFC 6749 §2.3.1: id and secret form-urlencoded, then Basic.
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = (!client_secret.is_empty())
            .then(|| {
                let pair = format!("{}:{}", enc(&client_id), enc(client_secret));
                let b64 = base64::engine::general_purpose::STANDARD.encode(pair);
                axum::http::HeaderValue::from_str(&format!("Basic {b64}")).ok()
            })
            .flatten()
            .map(|mut v| {
                v.set_sensitive(true);
                v
            });
        Self {
            identity,
            issuer,
            client_id,
            basic,
            endpoints: RwLock::new(None),
        }
    }

    /// The endpoints, discovered once (and again after a failure).
    pub(crate) async fn endpoints(&self) -> Result<Arc<Endpoints>, BffError> {
        if let Some(known) = self
            .endpoints
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(known);
        }
        let unavailable = || BffError::Refused {
            status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
            code: "identity_provider_unavailable",
            detail: "the identity provider cannot be reached; try again later",
        };
        let ctx = own_context("oidc-discovery");
        let found: Endpoints = self
            .identity
            .get_json_uncached(&ctx, DISCOVERY_PATH)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "OpenID discovery failed");
                unavailable()
            })?;
        let http =
            |u: &str| url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if found.issuer != self.issuer
            || !http(&found.authorization_endpoint)
            || !http(&found.token_endpoint)
            || found
                .end_session_endpoint
                .as_deref()
                .is_some_and(|u| !http(u))
        {
            tracing::warn!("OpenID discovery document refused (issuer or endpoint URLs)");
            return Err(unavailable());
        }
        let found = Arc::new(found);
        *self.endpoints.write().unwrap_or_else(|e| e.into_inner()) = Some(found.clone());
        Ok(found)
    }

    /// Redeems an authorization code (PKCE `verifier`).
    pub(crate) async fn redeem_code(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<TokenSet, TokenError> {
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_verifier", verifier)
            .append_pair("client_id", &self.client_id)
            .finish();
        self.token_request(form).await
    }

    /// Redeems a refresh token.
    pub(crate) async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, TokenError> {
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", refresh_token)
            .append_pair("client_id", &self.client_id)
            .finish();
        self.token_request(form).await
    }

    /// POSTs a token request to the token endpoint (through the identity downstream: its path and query).
    async fn token_request(&self, form: String) -> Result<TokenSet, TokenError> {
        let endpoints = self
            .endpoints()
            .await
            .map_err(|_| TokenError::Unavailable)?;
        let url =
            url::Url::parse(&endpoints.token_endpoint).map_err(|_| TokenError::Unavailable)?;
        let mut path = url.path().to_owned();
        if let Some(q) = url.query() {
            path = format!("{path}?{q}");
        }
        let ctx = own_context("oidc-token");
        let extra: Vec<_> = self
            .basic
            .iter()
            .map(|v| (axum::http::header::AUTHORIZATION, v.clone()))
            .collect();
        let reply = self
            .identity
            .post_form(&ctx, &path, form, &extra)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "token request failed");
                TokenError::Unavailable
            })?;
        if reply.status.is_client_error() {
            tracing::info!(
                status = reply.status.as_u16(),
                "token request refused by the identity provider"
            );
            return Err(TokenError::Refused);
        }
        serde_json::from_slice(&reply.body).map_err(|_| {
            tracing::warn!("token endpoint answer is not a token set");
            TokenError::Unavailable
        })
    }
}

/// The ID-token claims the session needs (the rest is kept for `/bff/user`).
#[derive(Debug, Deserialize)]
pub(crate) struct IdClaims {
    /// The user.
    pub(crate) sub: String,
    /// The nonce of the login.
    #[serde(default)]
    pub(crate) nonce: Option<String>,
    /// The provider's session id.
    #[serde(default)]
    pub(crate) sid: Option<String>,
    /// Every claim.
    #[serde(flatten)]
    pub(crate) all: serde_json::Map<String, serde_json::Value>,
}

/// Verifies an ID token for `client_id` and its `nonce` (constant-time comparison).
pub(crate) async fn verify_id_token(
    verifier: &JwtVerifier,
    token: &str,
    client_id: &str,
    nonce: &str,
) -> Result<IdClaims, BffError> {
    let claims: IdClaims = verifier
        .decode(token, client_id, &["exp", "iss", "aud", "sub"])
        .await?;
    let given = claims.nonce.as_deref().unwrap_or("");
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        given.as_bytes(),
        nonce.as_bytes(),
    )) {
        return Err(BffError::Unauthenticated {
            reason: "ID token nonce mismatch",
        });
    }
    Ok(claims)
}

/// The claims of a back-channel logout token.
#[derive(Debug, Deserialize)]
pub(crate) struct LogoutClaims {
    /// The user whose sessions end.
    #[serde(default)]
    pub(crate) sub: Option<String>,
    /// The provider session that ended.
    #[serde(default)]
    pub(crate) sid: Option<String>,
    #[serde(default)]
    events: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    nonce: Option<serde_json::Value>,
}

/// Verifies a back-channel logout token (OpenID Connect Back-Channel Logout 1.0 §2.6): signature, `iss`,
/// `aud` = `client_id`, `exp`, `iat`, the logout event, `sub` or `sid`, no `nonce`.
pub(crate) async fn verify_logout_token(
    verifier: &JwtVerifier,
    token: &str,
    client_id: &str,
) -> Result<LogoutClaims, BffError> {
    let claims: LogoutClaims = verifier
        .decode(token, client_id, &["exp", "iss", "aud", "iat"])
        .await?;
    let refused = |reason| Err(BffError::Unauthenticated { reason });
    if !claims.events.contains_key(BACKCHANNEL_EVENT) {
        return refused("not a logout token");
    }
    if claims.nonce.is_some() {
        return refused("a logout token carries no nonce");
    }
    if claims.sub.is_none() && claims.sid.is_none() {
        return refused("a logout token names a sub or a sid");
    }
    Ok(claims)
}
