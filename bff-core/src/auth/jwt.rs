//! JWT bearer verification against a JWKS: explicit algorithm allow-list, no keys taken from the token itself,
//! `iss`/`aud`/`exp`/`nbf` checked with bounded leeway, keys cached and refetched (rate-limited) when a token
//! names an unknown `kid`, cached keys kept when the identity provider is down.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::time::Instant;

use super::discovery::JwksSource;
use super::identity::{Identity, is_header_safe};
use crate::config::JwtConfig;
use crate::context::RequestContext;
use crate::error::BffError;
use crate::trace::TraceContext;

/// Longest token accepted; longer ones are rejected before any parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Longest `kid` looked up.
const MAX_KID_LEN: usize = 128;

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

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    iat: Option<u64>,
    aud: Audience,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

struct CachedKey {
    key: DecodingKey,
    /// The `alg` the JWKS declares for the key, if any: a token must use exactly it.
    alg: Option<Algorithm>,
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, Arc<CachedKey>>,
    /// When the current keys were fetched.
    fetched_at: Option<Instant>,
    /// When a fetch was last attempted (successful or not), for the refetch rate limit.
    attempted_at: Option<Instant>,
}

/// A token that passed verification, remembered until `expires_at`.
struct Verified {
    identity: Identity,
    /// `exp` of the token: a remembered token is never accepted past it (plus leeway).
    expires_at: u64,
}

/// Verifies bearer tokens for one audience.
pub struct JwtVerifier {
    config: JwtConfig,
    /// Tokens already verified (exact token string → identity), bounded in entries and age.
    verified: Option<moka::sync::Cache<Arc<str>, Arc<Verified>>>,
    algorithms: Vec<Algorithm>,
    jwks: JwksSource,
    cache: RwLock<KeyCache>,
    /// Serialises fetches, so a burst of unknown `kid`s causes one fetch, not one per request.
    refresh: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("audience", &self.config.audience)
            .finish_non_exhaustive()
    }
}

fn unauthenticated(reason: &'static str) -> BffError {
    BffError::Unauthenticated { reason }
}

impl JwtVerifier {
    /// A verifier for validated `config`, fetching keys from `jwks` (a downstream, or discovery).
    pub fn new(config: JwtConfig, jwks: impl Into<JwksSource>) -> Self {
        let algorithms = config
            .algorithms
            .iter()
            .filter_map(|a| parse_algorithm(a).ok())
            .collect();
        let verified = (config.verified_cache_entries > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(config.verified_cache_entries)
                .time_to_live(Duration::from_secs(config.verified_cache_ttl_s.max(1)))
                .build()
        });
        Self {
            verified,
            config,
            algorithms,
            jwks: jwks.into(),
            cache: RwLock::new(KeyCache::default()),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// Verifies `token` and returns the caller's identity. A token verified before (the exact same string, so
    /// the same signature) is answered from the cache until its `exp` or the cache TTL, whichever is first.
    pub async fn verify(&self, token: &str) -> Result<Identity, BffError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(unauthenticated("malformed token"));
        }
        if let Some(cache) = &self.verified
            && let Some(hit) = cache.get(token)
        {
            if jsonwebtoken::get_current_timestamp() <= hit.expires_at + self.config.leeway_s {
                return Ok(hit.identity.clone());
            }
            cache.invalidate(token);
            return Err(unauthenticated("token expired"));
        }
        // Boxed: the slow path (signature check, JWKS refresh) is a large state machine that would otherwise
        // be copied into every request's edge future.
        Box::pin(self.verify_uncached(token)).await
    }

    async fn verify_uncached(&self, token: &str) -> Result<Identity, BffError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| unauthenticated("malformed token"))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(unauthenticated("token algorithm not accepted"));
        }
        if header.jku.is_some()
            || header.jwk.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
        {
            return Err(unauthenticated(
                "tokens carrying their own keys are not accepted",
            ));
        }
        let kid = header
            .kid
            .as_deref()
            .ok_or(unauthenticated("token has no key id"))?;
        if kid.is_empty() || kid.len() > MAX_KID_LEN {
            return Err(unauthenticated("unknown signing key"));
        }
        let key = self
            .key(kid)
            .await
            .ok_or(unauthenticated("unknown signing key"))?;
        if key.alg.is_some_and(|alg| alg != header.alg) || key.key.family() != header.alg.family() {
            return Err(unauthenticated("token algorithm does not match its key"));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[&self.config.audience]);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = self.config.leeway_s;
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &validation).map_err(|e| {
            let reason = match e.kind() {
                ErrorKind::ExpiredSignature => "token expired",
                ErrorKind::ImmatureSignature => "token not yet valid",
                ErrorKind::InvalidAudience => "token is for another client",
                ErrorKind::InvalidIssuer => "token from an untrusted issuer",
                ErrorKind::InvalidSignature => "bad token signature",
                ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim",
                _ => "invalid token",
            };
            tracing::debug!(error = %e, "token rejected");
            unauthenticated(reason)
        })?;
        let claims = data.claims;
        let now = jsonwebtoken::get_current_timestamp();
        if claims
            .iat
            .is_some_and(|iat| iat > now + self.config.leeway_s)
        {
            return Err(unauthenticated("token issued in the future"));
        }
        if !is_header_safe(&claims.sub) {
            return Err(unauthenticated("invalid subject"));
        }
        let mut scopes: Vec<String> = claims
            .scope
            .iter()
            .flat_map(|s| s.split(' '))
            .map(str::to_owned)
            .collect();
        scopes.extend(claims.scopes.unwrap_or_default());
        scopes.retain(|s| is_header_safe(s));
        scopes.sort();
        scopes.dedup();
        let client = match claims.aud {
            Audience::One(a) => a,
            Audience::Many(all) => all
                .into_iter()
                .find(|a| *a == self.config.audience)
                .unwrap_or_else(|| self.config.audience.clone()),
        };
        let identity = Identity {
            subject: claims.sub,
            client,
            scopes,
            partner: None,
        };
        if let Some(cache) = &self.verified {
            cache.insert(
                Arc::from(token),
                Arc::new(Verified {
                    identity: identity.clone(),
                    expires_at: claims.exp,
                }),
            );
        }
        Ok(identity)
    }

    fn cached(&self, kid: &str) -> (Option<Arc<CachedKey>>, bool) {
        let Ok(cache) = self.cache.read() else {
            return (None, false);
        };
        let max_age = Duration::from_secs(self.config.jwks_max_age_s);
        let fresh = cache.fetched_at.is_some_and(|t| t.elapsed() < max_age);
        (cache.keys.get(kid).cloned(), fresh)
    }

    async fn key(&self, kid: &str) -> Option<Arc<CachedKey>> {
        if let (Some(key), true) = self.cached(kid) {
            return Some(key);
        }
        let _guard = self.refresh.lock().await;
        let (key, fresh) = self.cached(kid);
        if key.is_some() && fresh {
            return key;
        }
        let min_interval = Duration::from_millis(self.config.jwks_min_refresh_ms);
        let recently = self
            .cache
            .read()
            .ok()
            .and_then(|c| c.attempted_at)
            .is_some_and(|t| t.elapsed() < min_interval);
        if recently {
            return key;
        }
        Box::pin(self.fetch()).await;
        self.cached(kid).0
    }

    /// Fetches the JWKS; on failure the cached keys stay in use.
    async fn fetch(&self) {
        let ctx = RequestContext::new(
            format!("jwks-{}", crate::trace::new_request_id()),
            TraceContext::from_headers(&Default::default()),
            None,
            Instant::now() + Duration::from_secs(5),
        );
        let result = self.jwks.fetch(&ctx, &self.config.jwks_path).await;
        let Ok(mut cache) = self.cache.write() else {
            return;
        };
        cache.attempted_at = Some(Instant::now());
        match result {
            Ok(set) => {
                let mut keys = HashMap::new();
                for jwk in &set.keys {
                    let Some(kid) = jwk.common.key_id.clone() else {
                        continue;
                    };
                    let alg = jwk
                        .common
                        .key_algorithm
                        .and_then(|a| Algorithm::from_str(&format!("{a:?}")).ok());
                    match DecodingKey::from_jwk(jwk) {
                        Ok(key) => {
                            keys.insert(kid, Arc::new(CachedKey { key, alg }));
                        }
                        Err(e) => tracing::warn!(kid, error = %e, "unusable JWK skipped"),
                    }
                }
                tracing::info!(keys = keys.len(), "JWKS refreshed");
                cache.keys = keys;
                cache.fetched_at = Some(Instant::now());
            }
            Err(e) => {
                tracing::warn!(error = %e, cached = cache.keys.len(), "JWKS fetch failed; keeping cached keys")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn verifier() -> JwtVerifier {
        let config = JwtConfig {
            audience: "bff-web".into(),
            ..JwtConfig::default()
        };
        // Nothing listens on the discard port: every JWKS fetch fails fast.
        let jwks = crate::downstream::Downstream::new(
            "identity",
            &crate::config::DownstreamConfig::at("http://127.0.0.1:9"),
            crate::downstream::http_client(std::time::Duration::from_millis(500)),
        );
        JwtVerifier::new(config, jwks)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// Whatever string arrives as a bearer token, verification answers 401 and never panics.
        #[test]
        fn arbitrary_tokens_are_unauthenticated(token in "\\PC{0,200}", parts in proptest::collection::vec("[A-Za-z0-9_-]{0,40}", 0..5)) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let verifier = verifier();
            for candidate in [token, parts.join(".")] {
                let result = runtime.block_on(verifier.verify(&candidate));
                prop_assert!(matches!(result, Err(BffError::Unauthenticated { .. })), "{:?}", result);
            }
        }
    }

    /// `none`, HMAC and unknown names are refused as configured algorithms; asymmetric ones are accepted.
    #[test]
    fn algorithm_allow_list() {
        assert!(parse_algorithm("RS256").is_ok());
        assert!(parse_algorithm("ES256").is_ok());
        assert!(parse_algorithm("EdDSA").is_ok());
        assert!(parse_algorithm("none").is_err());
        assert!(parse_algorithm("HS256").is_err());
        assert!(parse_algorithm("rs256").is_err());
    }
}
