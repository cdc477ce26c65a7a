//! `[auth.session]`: the gateway as the browser's OpenID Connect client (login, server-side sessions, cookie,
//! anti-forgery), off by default.

use serde::{Deserialize, Serialize};

use crate::config::error::ConfigError;

/// Where sessions are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SessionStoreKind {
    /// In this instance's memory (one instance, or sticky routing; lost on restart).
    #[default]
    Memory,
    /// In Redis, shared by every instance (revocation and refresh locks reach all of them).
    Redis,
}

/// The cookie's `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SameSite {
    /// Sent on top-level navigations from other sites (links into the app keep the user logged in).
    #[default]
    Lax,
    /// Never sent on requests started by another site.
    Strict,
}

/// The Redis session store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionRedisConfig {
    /// `redis://[user:password@]host:port[/db]` or `redis+unix:///path/to/redis.sock`.
    pub url: String,
    /// Prefix of every key (sessions, per-user indexes, pending logins, refresh locks).
    pub key_prefix: String,
    /// Longest wait for one Redis operation, in milliseconds (then 503 `session_store_unavailable`).
    pub timeout_ms: u64,
}

impl Default for SessionRedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: "bff:session:".into(),
            timeout_ms: 200,
        }
    }
}

/// Browser sessions: the gateway runs the OpenID Connect authorization code flow (PKCE S256, `state`, `nonce`)
/// against the identity provider found by discovery on `auth.jwt.jwks_downstream`, keeps the tokens on the
/// server and gives the browser an HttpOnly session cookie. Requires `auth.mode = "jwt"` with `discovery`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Serve `/bff/login`, `/bff/callback`, `/bff/user`, `/bff/logout`, `/bff/backchannel-logout` and accept
    /// the session cookie as a credential.
    pub enabled: bool,
    /// Also accept `Authorization: Bearer` tokens (non-browser clients) besides the session cookie.
    pub bearer: bool,
    /// The OAuth `client_id` registered at the identity provider (public client, PKCE); empty =
    /// `auth.jwt.audience`. Access tokens must be issued for `auth.jwt.audience`, ID tokens for this id.
    pub client_id: String,
    /// The client secret of a confidential client (sent with HTTP Basic authentication to the token
    /// endpoint, `client_secret_basic`); empty = a public client (PKCE only). Redacted from `/config`.
    pub client_secret: String,
    /// The absolute URL of this gateway's `/bff/callback` as the browser reaches it (registered at the IdP).
    pub redirect_uri: String,
    /// Where the identity provider sends the browser after logout (registered at the IdP); empty = `/` on the
    /// origin of `redirect_uri`.
    pub post_logout_redirect_uri: String,
    /// Scopes requested at login (`openid` is required; `offline_access` asks for a refresh token).
    pub scopes: Vec<String>,
    /// Origins allowed in `Origin` on unsafe cookie-authenticated requests; empty = the origin of
    /// `redirect_uri` only.
    pub allowed_origins: Vec<String>,
    /// Session cookie name; served over TLS (or with `secure_cookie`) it is prefixed `__Host-`.
    pub cookie_name: String,
    /// The cookie's `SameSite` attribute: `lax` or `strict`.
    pub same_site: SameSite,
    /// Mark the cookie `Secure` (and use the `__Host-` prefix); `None` = when `[server.tls]` is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_cookie: Option<bool>,
    /// A session unused this long ends (sliding expiry), in seconds.
    pub idle_timeout_s: u64,
    /// A session ends this long after login whatever its use (absolute expiry), in seconds.
    pub absolute_timeout_s: u64,
    /// The access token is refreshed when it has less than this left, in seconds.
    pub refresh_before_s: u64,
    /// How long a started login may take to come back to `/bff/callback`, in seconds.
    pub login_timeout_s: u64,
    /// ID-token claims returned by `GET /bff/user` (`sub` always).
    pub user_claims: Vec<String>,
    /// Where sessions are kept: `memory` or `redis`.
    pub store: SessionStoreKind,
    /// The Redis store (used when `store = "redis"`).
    pub redis: SessionRedisConfig,
    /// Most sessions (and pending logins) kept in memory (`store = "memory"`); the oldest go first.
    pub max_sessions: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            bearer: true,
            client_id: String::new(),
            client_secret: String::new(),
            redirect_uri: String::new(),
            post_logout_redirect_uri: String::new(),
            scopes: vec!["openid".into(), "profile".into(), "offline_access".into()],
            allowed_origins: Vec::new(),
            cookie_name: "bff_session".into(),
            same_site: SameSite::Lax,
            secure_cookie: None,
            idle_timeout_s: 1_800,
            absolute_timeout_s: 28_800,
            refresh_before_s: 60,
            login_timeout_s: 600,
            user_claims: vec!["sub".into(), "name".into(), "email".into()],
            store: SessionStoreKind::Memory,
            redis: SessionRedisConfig::default(),
            max_sessions: 100_000,
        }
    }
}

fn origin_of(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    matches!(url.scheme(), "http" | "https")
        .then(|| url.origin().ascii_serialization())
        .filter(|o| o != "null")
}

impl SessionConfig {
    /// The origins accepted in `Origin` (the configured ones, else the origin of `redirect_uri`).
    pub fn origins(&self) -> Vec<String> {
        if self.allowed_origins.is_empty() {
            origin_of(&self.redirect_uri).into_iter().collect()
        } else {
            self.allowed_origins.clone()
        }
    }

    /// The post-logout redirect URI (configured, else `/` on the origin of `redirect_uri`).
    pub fn post_logout_uri(&self) -> String {
        if self.post_logout_redirect_uri.is_empty() {
            origin_of(&self.redirect_uri).map_or_else(String::new, |o| format!("{o}/"))
        } else {
            self.post_logout_redirect_uri.clone()
        }
    }

    /// Checks an enabled section; errors name the key.
    pub fn validate(&self, jwt_discovery: bool) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        let invalid = |key: &str, reason: &str| ConfigError::Invalid {
            key: format!("auth.session.{key}"),
            reason: reason.to_owned(),
        };
        if !jwt_discovery {
            return Err(invalid(
                "enabled",
                "needs auth.mode = \"jwt\" with auth.jwt.discovery = true (the IdP's endpoints are discovered)",
            ));
        }
        let callback = url::Url::parse(&self.redirect_uri)
            .map_err(|_| invalid("redirect_uri", "must be an absolute http(s) URL"))?;
        if !matches!(callback.scheme(), "http" | "https") || callback.path() != "/bff/callback" {
            return Err(invalid(
                "redirect_uri",
                "must be an absolute http(s) URL ending in /bff/callback",
            ));
        }
        if !self.post_logout_redirect_uri.is_empty()
            && origin_of(&self.post_logout_redirect_uri).is_none()
        {
            return Err(invalid(
                "post_logout_redirect_uri",
                "must be an absolute http(s) URL",
            ));
        }
        for o in &self.allowed_origins {
            if origin_of(o).as_deref() != Some(o.trim_end_matches('/')) {
                return Err(invalid(
                    "allowed_origins",
                    "each must be an origin: scheme://host[:port]",
                ));
            }
        }
        if !self.scopes.iter().any(|s| s == "openid") {
            return Err(invalid("scopes", "must include openid"));
        }
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        };
        if !token(&self.cookie_name) || self.cookie_name.starts_with("__") {
            return Err(invalid(
                "cookie_name",
                "letters, digits, - _ . : only, not starting with __",
            ));
        }
        if self.scopes.iter().any(|s| !token(s)) {
            return Err(invalid("scopes", "letters, digits, - _ . : only"));
        }
        for (key, value, max) in [
            ("idle_timeout_s", self.idle_timeout_s, 7 * 86_400),
            ("absolute_timeout_s", self.absolute_timeout_s, 30 * 86_400),
            ("login_timeout_s", self.login_timeout_s, 3_600),
        ] {
            if value == 0 || value > max {
                return Err(invalid(key, &format!("must be in 1..={max}")));
            }
        }
        if self.refresh_before_s > 3_600 {
            return Err(invalid("refresh_before_s", "must be at most 3600"));
        }
        if self.max_sessions == 0 {
            return Err(invalid("max_sessions", "must be at least 1"));
        }
        if self.store == SessionStoreKind::Redis {
            if redis::Client::open(self.redis.url.as_str()).is_err() {
                return Err(invalid("redis.url", "not a valid Redis URL"));
            }
            if self.redis.timeout_ms == 0 || self.redis.timeout_ms > 10_000 {
                return Err(invalid("redis.timeout_ms", "must be in 1..=10000"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled() -> SessionConfig {
        SessionConfig {
            enabled: true,
            redirect_uri: "https://shop.example/bff/callback".into(),
            ..SessionConfig::default()
        }
    }

    #[test]
    fn validation_names_the_key() {
        assert!(
            SessionConfig::default().validate(false).is_ok(),
            "off: nothing checked"
        );
        assert!(enabled().validate(true).is_ok());
        let key = |c: SessionConfig, discovery: bool| match c.validate(discovery) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("{other:?}"),
        };
        assert_eq!(key(enabled(), false), "auth.session.enabled");
        for bad in [
            "",
            "/bff/callback",
            "https://shop.example/callback",
            "ftp://x/bff/callback",
        ] {
            let c = SessionConfig {
                redirect_uri: bad.into(),
                ..enabled()
            };
            assert_eq!(key(c, true), "auth.session.redirect_uri", "{bad}");
        }
        let c = SessionConfig {
            allowed_origins: vec!["https://shop.example/app".into()],
            ..enabled()
        };
        assert_eq!(key(c, true), "auth.session.allowed_origins");
        let c = SessionConfig {
            cookie_name: "__Host-x".into(),
            ..enabled()
        };
        assert_eq!(key(c, true), "auth.session.cookie_name");
        let c = SessionConfig {
            scopes: vec!["profile".into()],
            ..enabled()
        };
        assert_eq!(key(c, true), "auth.session.scopes");
        let c = SessionConfig {
            idle_timeout_s: 0,
            ..enabled()
        };
        assert_eq!(key(c, true), "auth.session.idle_timeout_s");
        assert_eq!(enabled().origins(), ["https://shop.example"]);
        assert_eq!(enabled().post_logout_uri(), "https://shop.example/");
    }
}
