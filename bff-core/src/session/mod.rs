//! Browser sessions: the gateway as the browser's OpenID Connect client (the "BFF" of OAuth 2.0 for
//! Browser-Based Applications). The browser holds only a random session id in an HttpOnly cookie; tokens stay
//! in the session store. A cookie-authenticated request must carry `X-CSRF: 1` (and, when unsafe, an allowed
//! `Origin`); its session's access token — refreshed shortly before expiry, once per session at a time
//! across instances — is then verified exactly like a bearer token. The browser's `Cookie` header is never
//! forwarded downstream. Endpoints: `/bff/login`, `/bff/callback`, `/bff/user`, `/bff/logout`,
//! `/bff/backchannel-logout` (see `endpoints.rs` and `docs/sessions.md`).

pub mod config;
mod endpoints;
mod oidc;
mod store;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use base64::Engine as _;
use sha2::Digest as _;

use crate::auth::{Authenticator, Identity, JwtVerifier};
use crate::downstream::Downstream;
use crate::error::BffError;
pub use config::SessionConfig;
use store::Session;
pub(crate) use store::Store;

/// Path prefix of the session endpoints.
pub const PREFIX: &str = "/bff/";
/// The anti-forgery header every cookie-authenticated request carries (value `1`).
pub const CSRF_HEADER: &str = "x-csrf";
/// How long one refresh may hold a session's lock.
const REFRESH_LOCK: Duration = Duration::from_secs(10);
/// How often a request waiting for another's refresh looks again.
const REFRESH_POLL: Duration = Duration::from_millis(20);
/// A session's sliding expiry is pushed back at most this often (one store write per session per interval).
const TOUCH_EVERY_S: u64 = 30;

/// 401 `session_expired`: the session is gone (logged out, expired, revoked, refresh refused); log in again.
pub fn session_expired() -> BffError {
    BffError::Refused {
        status: StatusCode::UNAUTHORIZED,
        code: "session_expired",
        detail: "the session has ended; log in again",
    }
}

fn store_unavailable(e: &store::StoreError) -> BffError {
    tracing::warn!(error = %e, "session store unavailable");
    BffError::Refused {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "session_store_unavailable",
        detail: "sessions cannot be checked right now; try again later",
    }
}

/// 32 random bytes from the system CSPRNG, base64url (43 characters).
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // The system generator failing is not recoverable; ring reports it instead of returning weak bytes.
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
        panic!("system random number generator unavailable");
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The store key of a cookie value: its SHA-256 (a leaked store does not yield usable cookies).
fn store_key(value: &str) -> String {
    sha2::Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// The `exp` of a token, read without verification (the token was verified when it was received).
fn unverified_exp(token: &str) -> u64 {
    let payload = token.split('.').nth(1).unwrap_or("");
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("exp").and_then(serde_json::Value::as_u64))
        .unwrap_or(0)
}

/// The session machinery of one gateway (built when `[auth.session] enabled = true`).
#[derive(Debug)]
pub struct Sessions {
    config: SessionConfig,
    client_id: String,
    store: Arc<Store>,
    provider: oidc::Provider,
    verifier: Arc<JwtVerifier>,
    /// The whole credential check (used with the session's access token).
    auth: Authenticator,
    /// `Secure` cookies with the `__Host-` prefix.
    secure: bool,
    cookie: String,
    login_cookie: String,
    origins: Vec<String>,
}

impl Sessions {
    /// Sessions for validated `config`: tokens from the provider behind `identity` (issuer `issuer`),
    /// verified by `verifier` (the bearer verifier); `tls` = the gateway serves TLS.
    pub fn new(
        config: &SessionConfig,
        audience: &str,
        issuer: &str,
        identity: Downstream,
        verifier: Arc<JwtVerifier>,
        tls: bool,
    ) -> Result<Self, crate::config::error::ConfigError> {
        let client_id = if config.client_id.is_empty() {
            audience.to_owned()
        } else {
            config.client_id.clone()
        };
        // A reload keeps the running gateway's in-memory sessions (a Redis store is shared anyway).
        let lent = crate::admin::lent_session_store().filter(|s| s.is_memory());
        let store = match lent {
            Some(store) if config.store == config::SessionStoreKind::Memory => store,
            _ => Arc::new(Store::new(config).map_err(|_| {
                crate::config::error::ConfigError::Invalid {
                    key: "auth.session.redis.url".into(),
                    reason: "not a valid Redis URL".into(),
                }
            })?),
        };
        let secure = config.secure_cookie.unwrap_or(tls);
        let prefix = if secure { "__Host-" } else { "" };
        Ok(Self {
            provider: oidc::Provider::new(
                identity,
                issuer.to_owned(),
                client_id.clone(),
                &config.client_secret,
            ),
            client_id,
            store,
            auth: Authenticator::Jwt(verifier.clone()),
            verifier,
            secure,
            cookie: format!("{prefix}{}", config.cookie_name),
            login_cookie: format!("{prefix}{}_login", config.cookie_name),
            origins: config.origins(),
            config: config.clone(),
        })
    }

    /// The store, when it is this instance's memory (kept across reloads).
    pub(crate) fn memory_store(&self) -> Option<Arc<Store>> {
        self.store.is_memory().then(|| self.store.clone())
    }

    /// Whether bearer tokens are accepted besides the cookie.
    pub fn bearer_allowed(&self) -> bool {
        self.config.bearer
    }

    /// The session cookie's name (with its `__Host-` prefix when secure).
    pub fn cookie_name(&self) -> &str {
        &self.cookie
    }

    /// The value of cookie `name` in `headers` (the first one).
    fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.trim_matches('"'))
            .filter(|v| !v.is_empty())
    }

    /// The session cookie of a request, if any.
    pub fn session_cookie<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        Self::cookie_value(headers, &self.cookie)
    }

    /// A `Set-Cookie` value: `name=value` with the session attributes, for `max_age` seconds (0 = delete).
    fn set_cookie(&self, name: &str, value: &str, max_age: u64) -> HeaderValue {
        let same_site = match self.config.same_site {
            config::SameSite::Lax => "Lax",
            config::SameSite::Strict => "Strict",
        };
        let secure = if self.secure { "; Secure" } else { "" };
        let cookie = format!(
            "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}"
        );
        HeaderValue::from_str(&cookie)
            .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
    }

    /// The anti-forgery checks of a cookie-authenticated request: `X-CSRF: 1`, and for an unsafe method an
    /// `Origin` among the allowed ones.
    pub fn check_forgery(&self, method: &Method, headers: &HeaderMap) -> Result<(), BffError> {
        let mut csrf = headers.get_all(CSRF_HEADER).iter();
        if csrf.next().is_none_or(|v| v.as_bytes() != b"1") || csrf.next().is_some() {
            return Err(BffError::Refused {
                status: StatusCode::FORBIDDEN,
                code: "csrf_header_required",
                detail: "cookie-authenticated requests must carry the header X-CSRF: 1",
            });
        }
        if !method.is_safe() {
            self.check_origin(headers)?;
        }
        Ok(())
    }

    /// An unsafe request's `Origin` must be one of the allowed origins. A browser sends `Origin: null` for
    /// its own form posts under `Referrer-Policy: no-referrer`; such a request is accepted when the browser
    /// also says `Sec-Fetch-Site: same-origin` (a header no page can set).
    fn check_origin(&self, headers: &HeaderMap) -> Result<(), BffError> {
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let same_origin_fetch = headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"same-origin");
        let allowed = match origin {
            Some("null") => same_origin_fetch,
            Some(o) => self.origins.iter().any(|a| a.eq_ignore_ascii_case(o)),
            None => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(BffError::Refused {
                status: StatusCode::FORBIDDEN,
                code: "origin_not_allowed",
                detail: "this request's Origin may not use the session",
            })
        }
    }

    /// Authenticates a request by its session cookie `value`: anti-forgery checks, the session (sliding
    /// expiry, absolute expiry), its access token refreshed if it is about to expire, then verified like a
    /// bearer token.
    pub async fn authenticate(
        &self,
        method: &Method,
        headers: &HeaderMap,
        value: &str,
    ) -> Result<Option<Identity>, BffError> {
        self.check_forgery(method, headers)?;
        let key = store_key(value);
        let session = self.live_session(&key).await?;
        let session = self.fresh(&key, session).await?;
        let mut bearer = HeaderMap::new();
        let credential = HeaderValue::from_str(&format!("Bearer {}", session.access_token))
            .map_err(|_| session_expired())?;
        bearer.insert(header::AUTHORIZATION, credential);
        self.auth.authenticate(&bearer, None).await
    }

    /// The session under `key` if it is live; pushes its idle expiry back.
    async fn live_session(&self, key: &str) -> Result<Session, BffError> {
        let session = self
            .store
            .get(key)
            .await
            .map_err(|e| store_unavailable(&e))?
            .ok_or_else(session_expired)?;
        let now = now();
        let absolute = session
            .created_at
            .saturating_add(self.config.absolute_timeout_s);
        if now >= absolute {
            let _ = self.store.delete(key).await;
            return Err(session_expired());
        }
        if now.saturating_sub(session.touched_at) >= TOUCH_EVERY_S {
            let mut touched = session.clone();
            touched.touched_at = now;
            self.keep(key, &touched).await?;
            return Ok(touched);
        }
        Ok(session)
    }

    /// Stores `session` until its idle or absolute expiry, whichever is first.
    async fn keep(&self, key: &str, session: &Session) -> Result<(), BffError> {
        let absolute = session
            .created_at
            .saturating_add(self.config.absolute_timeout_s);
        let left = absolute
            .saturating_sub(now())
            .min(self.config.idle_timeout_s)
            .max(1);
        self.store
            .put(key, session, Duration::from_secs(left))
            .await
            .map_err(|e| store_unavailable(&e))
    }

    fn needs_refresh(&self, session: &Session) -> bool {
        session.access_expires_at <= now().saturating_add(self.config.refresh_before_s)
    }

    /// `session` with an access token that is not about to expire: refreshed by this request (holding the
    /// session's lock in the store, so one refresh per session at a time across instances), or by another
    /// request this one waits for. A refused refresh ends the session (401 `session_expired`).
    async fn fresh(&self, key: &str, session: Session) -> Result<Session, BffError> {
        if !self.needs_refresh(&session) {
            return Ok(session);
        }
        let expired = session.access_expires_at <= now();
        if session.refresh_token.is_none() {
            return if expired {
                let _ = self.store.delete(key).await;
                Err(session_expired())
            } else {
                Ok(session)
            };
        }
        let token = random_token();
        loop {
            let locked = self
                .store
                .lock(key, &token, REFRESH_LOCK)
                .await
                .map_err(|e| store_unavailable(&e))?;
            // Under the lock or not, look again: another request may have refreshed meanwhile.
            let current = self
                .store
                .get(key)
                .await
                .map_err(|e| store_unavailable(&e))?
                .ok_or_else(session_expired);
            let current = match current {
                Ok(c) => c,
                Err(e) => {
                    if locked {
                        let _ = self.store.unlock(key, &token).await;
                    }
                    return Err(e);
                }
            };
            if !self.needs_refresh(&current) {
                if locked {
                    let _ = self.store.unlock(key, &token).await;
                }
                return Ok(current);
            }
            if locked {
                let result = self.refresh(key, current).await;
                let _ = self.store.unlock(key, &token).await;
                return result;
            }
            // The edge's deadline bounds this wait.
            tokio::time::sleep(REFRESH_POLL).await;
        }
    }

    /// Refreshes `session` (the caller holds its lock).
    async fn refresh(&self, key: &str, mut session: Session) -> Result<Session, BffError> {
        let refresh_token = session.refresh_token.clone().unwrap_or_default();
        match self.provider.refresh(&refresh_token).await {
            Ok(tokens) => {
                // The new access token must verify before it replaces the old one.
                let identity = self
                    .verifier
                    .verify(&tokens.access_token)
                    .await
                    .map_err(|_| session_expired());
                match identity {
                    Ok(identity) if identity.subject == session.sub => {}
                    _ => {
                        tracing::warn!("refreshed access token refused; session ended");
                        let _ = self.store.delete(key).await;
                        return Err(session_expired());
                    }
                }
                session.access_expires_at = unverified_exp(&tokens.access_token);
                session.access_token = tokens.access_token;
                if let Some(rotated) = tokens.refresh_token {
                    session.refresh_token = Some(rotated);
                }
                session.touched_at = now();
                self.keep(key, &session).await?;
                tracing::debug!("session access token refreshed");
                Ok(session)
            }
            Err(oidc::TokenError::Refused) => {
                tracing::info!("refresh refused by the identity provider; session ended");
                let _ = self.store.delete(key).await;
                Err(session_expired())
            }
            Err(oidc::TokenError::Unavailable) if session.access_expires_at > now() => {
                // The current token is still valid: use it; a later request tries again.
                Ok(session)
            }
            Err(oidc::TokenError::Unavailable) => Err(BffError::Refused {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "identity_provider_unavailable",
                detail: "the session cannot be renewed right now; try again later",
            }),
        }
    }
}

/// The S256 PKCE challenge of `verifier`: base64url(SHA-256(verifier)).
pub(crate) fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

impl Sessions {
    /// The router of the session endpoints (`/bff/*`), mounted by the gateway.
    pub(crate) fn router(self: &Arc<Self>) -> axum::Router {
        endpoints::router(self.clone())
    }
}
