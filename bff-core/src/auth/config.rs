//! The `[auth]` section: which credential clients present (`mode`), JWT verification, API keys, client
//! certificates; its checks.

use std::collections::BTreeMap;
use std::str::FromStr;

use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};

use crate::config::error::ConfigError;
use crate::downstream::config::DownstreamConfig;

/// Which credential clients present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// No authentication (only for development and tests).
    #[default]
    None,
    /// `Authorization: Bearer <JWT>`, verified against a JWKS.
    Jwt,
    /// `x-api-key: <key>`, looked up among the configured hashed keys; with `[[auth.client_certs]]`, a
    /// caller whose verified client certificate matches an entry needs no key.
    ApiKey,
    /// A verified client certificate (mTLS, `server.tls.client_ca_file`) matching an `[[auth.client_certs]]`
    /// entry; no API keys.
    ClientCert,
}

/// How clients authenticate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The credential this gateway accepts.
    pub mode: AuthMode,
    /// JWT verification (used when `mode = "jwt"`).
    pub jwt: JwtConfig,
    /// Accepted API keys (used when `mode = "api_key"`), stored as SHA-256 hashes.
    pub api_keys: Vec<ApiKeyConfig>,
    /// Partners authenticated by client certificate (`mode = "client_cert"`, or alongside API keys).
    pub client_certs: Vec<ClientCertConfig>,
    /// Browser sessions: the gateway as the browser's OpenID Connect client (`enabled = true`).
    pub session: crate::session::config::SessionConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::None,
            jwt: JwtConfig::default(),
            api_keys: Vec::new(),
            client_certs: Vec::new(),
            session: crate::session::config::SessionConfig::default(),
        }
    }
}

/// JWT verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// Name of the downstream that serves the JWKS (its timeout and size cap apply to the fetch).
    pub jwks_downstream: String,
    /// Path of the JWKS document on that downstream (unused with `discovery`).
    pub jwks_path: String,
    /// Find the JWKS by OpenID Connect discovery: `GET /.well-known/openid-configuration` on the
    /// `jwks_downstream` must announce `issuer` and gives the `jwks_uri` (https; may be another host).
    pub discovery: bool,
    /// Required `iss` claim.
    pub issuer: String,
    /// Required `aud` claim: the client this gateway serves, e.g. `bff-web`.
    pub audience: String,
    /// Accepted signature algorithms (explicit allow-list): any of `RS256`, `RS384`, `RS512`, `PS256`, `ES256`,
    /// `ES384`, `EdDSA`. `none` and HMAC algorithms are refused.
    pub algorithms: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds (at most 300).
    pub leeway_s: u64,
    /// Minimum interval between two JWKS fetches triggered by an unknown `kid`, in milliseconds.
    pub jwks_min_refresh_ms: u64,
    /// Age after which the cached JWKS is refreshed, in seconds: in the background, while the cached keys
    /// keep verifying.
    pub jwks_max_age_s: u64,
    /// Longest a request with an unknown `kid` waits for a running JWKS refresh, in milliseconds (then 401).
    pub jwks_unknown_kid_wait_ms: u64,
    /// Verified tokens remembered, so a client's repeated token skips the signature check (`0` = off).
    pub verified_cache_entries: u64,
    /// How long a verified token is remembered at most, in seconds (never past its `exp`). Bounds how long a
    /// token signed by a key removed from the JWKS is still accepted.
    pub verified_cache_ttl_s: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            jwks_downstream: "identity".into(),
            jwks_path: "/.well-known/jwks.json".into(),
            discovery: false,
            issuer: "bff-dev-idp".into(),
            audience: String::new(),
            algorithms: vec!["RS256".into(), "ES256".into()],
            leeway_s: 30,
            jwks_min_refresh_ms: 1_000,
            jwks_max_age_s: 300,
            jwks_unknown_kid_wait_ms: 500,
            verified_cache_entries: 10_000,
            verified_cache_ttl_s: 60,
        }
    }
}

/// One accepted API key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Lower-case hex SHA-256 of the key (the key itself is never stored).
    pub key_sha256: String,
    /// The partner the key belongs to, e.g. `acme`.
    pub partner_id: String,
    /// The partner's tier, e.g. `gold`.
    pub tier: String,
    /// Scopes granted to the key.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// One partner authenticated by client certificate: a certificate verified against
/// `server.tls.client_ca_file` whose subject common name equals `subject` (or which carries the subject
/// alternative name `san`) is this partner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertConfig {
    /// Exact subject common name (`CN`) of the certificate; set this or `san`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Exact subject alternative name (DNS name, e-mail, URI or IP address); set this or `subject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub san: Option<String>,
    /// The partner the certificate belongs to, e.g. `acme`.
    pub partner_id: String,
    /// The partner's tier, e.g. `gold`.
    pub tier: String,
    /// Scopes granted to the certificate.
    #[serde(default)]
    pub scopes: Vec<String>,
}

impl AuthConfig {
    /// Checks the `[auth]` section: the JWT settings of `mode = "jwt"` (the JWKS downstream among
    /// `downstreams`), the API keys and client certificates (which need `client_ca`:
    /// `server.tls.client_ca_file` set); the error names the first bad key.
    pub(crate) fn validate(
        &self,
        downstreams: &BTreeMap<String, DownstreamConfig>,
        client_ca: bool,
    ) -> Result<(), ConfigError> {
        let auth = self;
        if auth.mode == AuthMode::Jwt {
            let jwt = &auth.jwt;
            if !downstreams.contains_key(&jwt.jwks_downstream) {
                return Err(ConfigError::invalid(
                    "auth.jwt.jwks_downstream",
                    "names no configured downstream",
                ));
            }
            if jwt.audience.is_empty() {
                return Err(ConfigError::invalid(
                    "auth.jwt.audience",
                    "must not be empty",
                ));
            }
            if jwt.issuer.is_empty() {
                return Err(ConfigError::invalid("auth.jwt.issuer", "must not be empty"));
            }
            if jwt.algorithms.is_empty() {
                return Err(ConfigError::invalid(
                    "auth.jwt.algorithms",
                    "must not be empty",
                ));
            }
            for alg in &jwt.algorithms {
                parse_algorithm(alg)
                    .map_err(|reason| ConfigError::invalid("auth.jwt.algorithms", reason))?;
            }
            if jwt.leeway_s > 300 {
                return Err(ConfigError::invalid(
                    "auth.jwt.leeway_s",
                    "must be at most 300",
                ));
            }
            let bounded = [
                ("jwks_min_refresh_ms", jwt.jwks_min_refresh_ms, 0, 3_600_000),
                ("jwks_max_age_s", jwt.jwks_max_age_s, 0, 604_800),
                (
                    "jwks_unknown_kid_wait_ms",
                    jwt.jwks_unknown_kid_wait_ms,
                    0,
                    5_000,
                ),
                ("verified_cache_ttl_s", jwt.verified_cache_ttl_s, 0, 86_400),
            ];
            for (key, value, min, max) in bounded {
                if !(min..=max).contains(&value) {
                    return Err(ConfigError::invalid(
                        format!("auth.jwt.{key}"),
                        format!("must be between {min} and {max}"),
                    ));
                }
            }
        }
        auth.session
            .validate(auth.mode == AuthMode::Jwt && auth.jwt.discovery)?;
        if auth.mode == AuthMode::ApiKey && auth.api_keys.is_empty() {
            return Err(ConfigError::invalid(
                "auth.api_keys",
                "at least one key is needed",
            ));
        }
        if auth.mode == AuthMode::ClientCert && auth.client_certs.is_empty() {
            return Err(ConfigError::invalid(
                "auth.client_certs",
                "at least one entry is needed",
            ));
        }
        if !auth.client_certs.is_empty() && !client_ca {
            return Err(ConfigError::invalid(
                "auth.client_certs",
                "needs `server.tls.client_ca_file` (client certificates are verified in the TLS handshake)",
            ));
        }
        for (i, c) in auth.client_certs.iter().enumerate() {
            if c.subject.is_some() == c.san.is_some() {
                return Err(ConfigError::invalid(
                    format!("auth.client_certs[{i}]"),
                    "set exactly one of `subject` and `san`",
                ));
            }
            if c.subject.as_deref().or(c.san.as_deref()) == Some("") {
                return Err(ConfigError::invalid(
                    format!("auth.client_certs[{i}]"),
                    "`subject` / `san` must not be empty",
                ));
            }
            if !super::identity::is_header_safe(&c.partner_id)
                || !super::identity::is_header_safe(&c.tier)
            {
                return Err(ConfigError::invalid(
                    format!("auth.client_certs[{i}].partner_id"),
                    "partner_id and tier must be 1 to 256 visible ASCII characters",
                ));
            }
        }
        for (i, k) in auth.api_keys.iter().enumerate() {
            let valid = k.key_sha256.len() == 64
                && k.key_sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !valid {
                return Err(ConfigError::invalid(
                    format!("auth.api_keys[{i}].key_sha256"),
                    "must be 64 lower-case hex digits",
                ));
            }
            if k.partner_id.is_empty() {
                return Err(ConfigError::invalid(
                    format!("auth.api_keys[{i}].partner_id"),
                    "must not be empty",
                ));
            }
        }
        Ok(())
    }
}

/// Parses an allowed algorithm name; `none` and HMAC algorithms are refused (a JWKS of public keys cannot
/// verify them safely, and accepting them invites key confusion).
pub fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    let alg = Algorithm::from_str(name).map_err(|_| format!("unknown algorithm `{name}`"))?;
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Err(format!(
            "`{name}` is a shared-secret algorithm; only asymmetric algorithms are accepted"
        )),
        _ => Ok(alg),
    }
}
