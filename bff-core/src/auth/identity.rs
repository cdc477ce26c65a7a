//! The verified caller and the identity headers the gateway sends downstream on its behalf.

use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};

/// Prefix of the gateway's identity header namespace. Client-sent headers with this prefix are removed at the
/// edge; downstream calls carry only the gateway's own, derived from verified credentials.
pub const IDENTITY_HEADER_PREFIX: &str = "x-bff-";
/// Downstream header: the verified user id (JWT `sub`); absent for partners.
pub const USER_ID_HEADER: &str = "x-bff-user-id";
/// Downstream header: the client the credential was issued for (JWT `aud`, or `partner`).
pub const CLIENT_HEADER: &str = "x-bff-client";
/// Downstream header: the granted scopes, space-separated.
pub const SCOPES_HEADER: &str = "x-bff-scopes";
/// Downstream header: the partner id of an API key.
pub const PARTNER_ID_HEADER: &str = "x-bff-partner-id";
/// Downstream header: the partner's tier.
pub const PARTNER_TIER_HEADER: &str = "x-bff-partner-tier";

/// A partner authenticated by API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partner {
    /// Partner id, e.g. `acme`.
    pub id: String,
    /// Tier, e.g. `gold`.
    pub tier: String,
}

/// The verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id (JWT `sub`), or the partner id for API keys.
    pub subject: String,
    /// The client the credential belongs to (JWT `aud`, or `partner`).
    pub client: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Set when the caller is a partner (API key).
    pub partner: Option<Partner>,
    /// When the credential stops being valid, in Unix seconds (the JWT `exp`); `None` for credentials that do
    /// not expire (API keys, client certificates). Long-lived responses (event streams) end at it.
    pub expires_at: Option<u64>,
}

impl Identity {
    /// Whether every scope in `required` is granted.
    pub fn has_scopes(&self, required: &[&str]) -> bool {
        required.iter().all(|r| self.scopes.iter().any(|s| s == r))
    }

    /// The identity headers for downstream calls. Values were validated as visible ASCII when the credential
    /// was verified, so none is dropped in practice.
    pub fn downstream_headers(&self) -> Vec<(&'static str, HeaderValue)> {
        let mut headers = Vec::with_capacity(5);
        let mut push = |name, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.push((name, v));
            }
        };
        match &self.partner {
            Some(p) => {
                push(PARTNER_ID_HEADER, &p.id);
                push(PARTNER_TIER_HEADER, &p.tier);
            }
            None => push(USER_ID_HEADER, &self.subject),
        }
        push(CLIENT_HEADER, &self.client);
        push(SCOPES_HEADER, &self.scopes.join(" "));
        headers
    }
}

/// The identity headers of one verified caller, rendered once (when the request context is built right after
/// the credential was verified) and reused by every downstream call, cache key and idempotency scope of the
/// request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityHeaders {
    /// The headers sent downstream, in [`Identity::downstream_headers`] order.
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The same headers as one string (`name=value`, `\u{1f}`-separated): the identity part of cache keys
    /// and idempotency records; empty without identity.
    scope: String,
}

/// The headers of a request without identity.
pub(crate) static NO_IDENTITY_HEADERS: IdentityHeaders = IdentityHeaders {
    headers: Vec::new(),
    scope: String::new(),
};

impl IdentityHeaders {
    /// Renders the headers of `identity` (none without one).
    pub fn of(identity: Option<&Identity>) -> Self {
        let Some(identity) = identity else {
            return Self::default();
        };
        let rendered = identity.downstream_headers();
        let mut scope = String::new();
        let mut headers = Vec::with_capacity(rendered.len());
        for (name, value) in rendered {
            if !scope.is_empty() {
                scope.push('\u{1f}');
            }
            scope.push_str(name);
            scope.push('=');
            scope.push_str(&String::from_utf8_lossy(value.as_bytes()));
            headers.push((HeaderName::from_static(name), value));
        }
        Self { headers, scope }
    }

    /// The headers to send downstream.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// What the downstream sees of the caller as one string; empty without identity.
    pub fn scope(&self) -> &str {
        &self.scope
    }
}

/// A verified caller with its identity headers rendered once: what the edge puts in a request's context.
/// Shared: the verified-token cache hands every request presenting the same token the same one (no identity
/// copied, no header rendered again).
#[derive(Debug)]
pub(crate) struct Verified {
    identity: Identity,
    headers: IdentityHeaders,
}

impl Verified {
    /// `identity` with its headers rendered.
    pub(crate) fn new(identity: Identity) -> Arc<Self> {
        let headers = IdentityHeaders::of(Some(&identity));
        Arc::new(Self { identity, headers })
    }

    /// The verified caller.
    pub(crate) fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Its downstream headers.
    pub(crate) fn headers(&self) -> &IdentityHeaders {
        &self.headers
    }

    /// The identity itself (moved out when this is its only holder).
    pub(crate) fn into_identity(this: Arc<Self>) -> Identity {
        Arc::try_unwrap(this).map_or_else(|shared| shared.identity.clone(), |v| v.identity)
    }
}

/// Whether `value` may be sent as an identity header value: 1..=256 visible ASCII characters.
pub(crate) fn is_header_safe(value: &str) -> bool {
    (1..=256).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic())
}
