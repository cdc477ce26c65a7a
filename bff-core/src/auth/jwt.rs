//! JWT bearer verification against a JWKS: explicit algorithm allow-list, no keys taken from the token itself,
//! `crit` honoured (no extension is understood, so any is refused), `iss` (a string) / `aud` (a string or an
//! array of strings) / `exp` / `nbf` / `iat` checked with bounded leeway, numeric dates bounded and all date
//! arithmetic checked. Keys never block a request: known keys verify from the cache while a refresh runs in
//! the background (rate-limited); an unknown `kid` waits a short bounded time for that refresh, then 401.
//! Cached keys are kept when the identity provider is down.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::time::Instant;

use super::config::JwtConfig;
use super::discovery::JwksSource;
use super::identity::{Identity, Verified, is_header_safe};
use crate::context::RequestContext;
use crate::error::BffError;
use crate::trace::TraceContext;

/// Longest token accepted; longer ones are rejected before any parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Longest `kid` looked up.
const MAX_KID_LEN: usize = 128;
/// Latest numeric date accepted in `exp`, `nbf` and `iat`: 9999-12-31T23:59:59Z. Larger values are not dates a
/// real issuer writes, and bounding them keeps every sum with the leeway far from overflow.
pub const MAX_NUMERIC_DATE: u64 = 253_402_300_799;

pub use super::config::parse_algorithm;

/// The claims read from a token. Types are strict: `iss` and `sub` strings, `aud` a string or an array of
/// strings, numeric dates non-negative integers; anything else fails to deserialize (401).
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    // Read only to enforce its type: jsonwebtoken's own issuer check also accepts an array.
    #[allow(dead_code)]
    iss: String,
    exp: u64,
    #[serde(default, deserialize_with = "present_date")]
    nbf: Option<u64>,
    #[serde(default, deserialize_with = "present_date")]
    iat: Option<u64>,
    aud: Audience,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

/// A numeric date that, when present, is a non-negative integer (`null` included is refused).
fn present_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    u64::deserialize(d).map(Some)
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
    /// When a fetch was last started (successful or not), for the refetch rate limit.
    attempted_at: Option<Instant>,
}

/// The JWKS cache and its background refresh, shared with the refresh task.
struct KeyStore {
    jwks: JwksSource,
    path: String,
    max_age: Duration,
    min_refresh: Duration,
    cache: RwLock<KeyCache>,
    /// Set while a fetch runs, so there is at most one.
    refreshing: AtomicBool,
    /// Bumped when a fetch ends (successfully or not); requests waiting for an unknown `kid` watch it.
    generation: tokio::sync::watch::Sender<u64>,
}

/// Verifies bearer tokens for one audience.
pub struct JwtVerifier {
    config: JwtConfig,
    /// Tokens already verified (exact token string → the caller, headers rendered), bounded in entries and
    /// age; an entry is never accepted past its token's `exp` (plus leeway).
    verified: Option<moka::sync::Cache<Arc<str>, Arc<Verified>, TailHash>>,
    algorithms: Vec<Algorithm>,
    keys: Arc<KeyStore>,
    /// `jwks_unknown_kid_wait_ms`, converted once.
    unknown_kid_wait: Duration,
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
    /// A verifier for validated `config`, fetching keys from `jwks` (a downstream, or OpenID discovery).
    pub fn new(config: JwtConfig, jwks: impl Into<JwksSource>) -> Self {
        super::jwt_crypto::install();
        let algorithms = config
            .algorithms
            .iter()
            .filter_map(|a| parse_algorithm(a).ok())
            .collect();
        let verified = (config.verified_cache_entries > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(config.verified_cache_entries)
                .time_to_live(Duration::from_secs(config.verified_cache_ttl_s.max(1)))
                .build_with_hasher(TailHash::default())
        });
        let keys = Arc::new(KeyStore {
            jwks: jwks.into(),
            path: config.jwks_path.clone(),
            max_age: Duration::from_secs(config.jwks_max_age_s),
            min_refresh: Duration::from_millis(config.jwks_min_refresh_ms),
            cache: RwLock::new(KeyCache::default()),
            refreshing: AtomicBool::new(false),
            generation: tokio::sync::watch::channel(0).0,
        });
        Self {
            verified,
            unknown_kid_wait: Duration::from_millis(config.jwks_unknown_kid_wait_ms),
            config,
            algorithms,
            keys,
        }
    }

    /// Verifies `token` and returns the caller's identity. A token verified before (the exact same string, so
    /// the same signature) is answered from the cache until its `exp` or the cache TTL, whichever is first.
    pub async fn verify(&self, token: &str) -> Result<Identity, BffError> {
        self.verify_shared(token).await.map(Verified::into_identity)
    }

    /// [`Self::verify`], the caller with its identity headers rendered: a remembered token gives the one
    /// every request presenting it shares. Expiry is checked on every call.
    pub(crate) async fn verify_shared(&self, token: &str) -> Result<Arc<Verified>, BffError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(unauthenticated("malformed token"));
        }
        if let Some(cache) = &self.verified
            && let Some(hit) = cache.get(token)
        {
            let exp = hit.identity().expires_at.unwrap_or(0);
            if jsonwebtoken::get_current_timestamp() <= exp.saturating_add(self.config.leeway_s) {
                return Ok(hit);
            }
            cache.invalidate(token);
            return Err(unauthenticated("token expired"));
        }
        // Boxed: the slow path (signature check, JWKS refresh) is a large state machine that would otherwise
        // be copied into every request's edge future.
        Box::pin(self.verify_uncached(token)).await
    }

    async fn verify_uncached(&self, token: &str) -> Result<Arc<Verified>, BffError> {
        let claims: Claims = self
            .decode(token, &self.config.audience, &["exp", "iss", "aud", "sub"])
            .await?;
        let dates = [Some(claims.exp), claims.nbf, claims.iat];
        if dates.into_iter().flatten().any(|d| d > MAX_NUMERIC_DATE) {
            return Err(unauthenticated("invalid token"));
        }
        let now = jsonwebtoken::get_current_timestamp();
        if claims
            .iat
            .is_some_and(|iat| iat > now.saturating_add(self.config.leeway_s))
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
        let verified = Verified::new(Identity {
            subject: claims.sub,
            client,
            scopes,
            partner: None,
            expires_at: Some(claims.exp),
        });
        if let Some(cache) = &self.verified {
            cache.insert(Arc::from(token), verified.clone());
        }
        Ok(verified)
    }

    /// Verifies a signed token of the identity provider for `audience` (signature by a JWKS key with an
    /// allowed algorithm, `iss`, `aud`, `exp`, `nbf`, the `required` claims present) and decodes its claims.
    /// Used for access tokens, and for the ID and logout tokens of browser sessions (`crate::session`).
    pub(crate) async fn decode<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        audience: &str,
        required: &[&str],
    ) -> Result<T, BffError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(unauthenticated("malformed token"));
        }
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
        // RFC 7515 §4.1.11: extensions listed in `crit` must be understood, and this verifier understands
        // none (an empty list is malformed too).
        if header.crit.is_some() {
            return Err(unauthenticated("unsupported critical header parameter"));
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
        validation.set_audience(&[audience]);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_required_spec_claims(required);
        validation.leeway = self.config.leeway_s;
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<T>(token, &key.key, &validation).map_err(|e| {
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
        Ok(data.claims)
    }

    /// The key named `kid`. A cached key is returned at once (a stale cache starts a background refresh);
    /// an unknown `kid` starts a refresh if the rate limit allows and waits for the running one at most
    /// `jwks_unknown_kid_wait_ms`.
    async fn key(&self, kid: &str) -> Option<Arc<CachedKey>> {
        let (key, fresh) = self.keys.cached(kid);
        if let Some(key) = key {
            if !fresh {
                self.keys.refresh_in_background();
            }
            return Some(key);
        }
        // Subscribed before looking at the refresh, so its end cannot be missed.
        let mut ended = self.keys.generation.subscribe();
        if !self.keys.refresh_in_background() {
            // No refresh running and none allowed yet: a fetch that just ended may have brought the key.
            return self.keys.cached(kid).0;
        }
        let _ = tokio::time::timeout(self.unknown_kid_wait, ended.changed()).await;
        self.keys.cached(kid).0
    }
}

/// The verified-token cache's hasher: a token is hashed by its length and its last [`TAIL`] bytes only
/// (inside its signature, which no two tokens share), with the process's random SipHash keys — rather than
/// all of its several hundred bytes on every request. A lookup still compares the whole token, so this only
/// spreads entries; and only tokens that passed verification are ever inserted.
#[derive(Clone, Default)]
struct TailHash(std::hash::RandomState);

/// Bytes of a token that its hash reads.
const TAIL: usize = 32;

impl std::hash::BuildHasher for TailHash {
    type Hasher = TailHasher;

    fn build_hasher(&self) -> TailHasher {
        TailHasher(self.0.build_hasher())
    }
}

/// See [`TailHash`].
struct TailHasher(std::hash::DefaultHasher);

impl std::hash::Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.write_usize(bytes.len());
        self.0.write(&bytes[bytes.len().saturating_sub(TAIL)..]);
    }

    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

impl KeyStore {
    fn cached(&self, kid: &str) -> (Option<Arc<CachedKey>>, bool) {
        let Ok(cache) = self.cache.read() else {
            return (None, false);
        };
        let fresh = cache.fetched_at.is_some_and(|t| t.elapsed() < self.max_age);
        (cache.keys.get(kid).cloned(), fresh)
    }

    /// Starts a JWKS fetch in the background unless one is running or one started less than `min_refresh`
    /// ago (or no runtime is available). Whether a fetch is running afterwards.
    fn refresh_in_background(self: &Arc<Self>) -> bool {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return true;
        }
        let allowed = match self.cache.write() {
            Ok(mut cache) => {
                let recently = cache
                    .attempted_at
                    .is_some_and(|t| t.elapsed() < self.min_refresh);
                if !recently {
                    cache.attempted_at = Some(Instant::now());
                }
                !recently
            }
            Err(_) => false,
        };
        let runtime = tokio::runtime::Handle::try_current();
        match runtime {
            Ok(runtime) if allowed => {
                let store = self.clone();
                runtime.spawn(async move {
                    Box::pin(store.fetch()).await;
                    store.refreshing.store(false, Ordering::Release);
                    store.generation.send_modify(|g| *g = g.wrapping_add(1));
                });
                true
            }
            _ => {
                self.refreshing.store(false, Ordering::Release);
                false
            }
        }
    }

    /// Fetches the JWKS; on failure the cached keys stay in use.
    async fn fetch(&self) {
        let ctx = RequestContext::new(
            format!("jwks-{}", crate::trace::new_request_id()),
            TraceContext::from_headers(&Default::default()),
            None,
            Instant::now() + Duration::from_secs(5),
        );
        let result = self.jwks.fetch(&ctx, &self.path).await;
        match result {
            Ok(set) => self.install(&set),
            Err(e) => {
                let cached = self.cache.read().map_or(0, |c| c.keys.len());
                tracing::warn!(error = %e, cached, "JWKS fetch failed; keeping cached keys");
            }
        }
    }

    /// Replaces the cached keys with the usable keys of `set`.
    fn install(&self, set: &JwkSet) {
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
        if let Ok(mut cache) = self.cache.write() {
            cache.keys = keys;
            cache.fetched_at = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::downstream::Downstream;
    use proptest::prelude::*;

    fn verifier() -> JwtVerifier {
        let config = JwtConfig {
            audience: "bff-web".into(),
            ..JwtConfig::default()
        };
        // Nothing listens on the discard port: every JWKS fetch fails fast.
        let jwks = Downstream::new(
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

    /// Extreme values for a claim: out-of-range and wrongly typed numbers and strings, and plausible dates.
    fn extreme() -> impl Strategy<Value = serde_json::Value> {
        let now = jsonwebtoken::get_current_timestamp();
        prop_oneof![
            Just(serde_json::json!(u64::MAX)),
            Just(serde_json::json!(u64::MAX - 1)),
            Just(serde_json::json!(i64::MIN)),
            Just(serde_json::json!(-1)),
            Just(serde_json::json!(0)),
            Just(serde_json::json!(MAX_NUMERIC_DATE)),
            Just(serde_json::json!(MAX_NUMERIC_DATE + 1)),
            Just(serde_json::json!(1e300)),
            Just(serde_json::json!(f64::MIN_POSITIVE)),
            Just(serde_json::json!(null)),
            Just(serde_json::json!("1700000000")),
            Just(serde_json::json!([now])),
            (0u64..=u64::MAX).prop_map(|n| serde_json::json!(n)),
            (now - 1_000..now + 1_000).prop_map(|n| serde_json::json!(n)),
            (now - 1_000..now + 1_000).prop_map(|n| serde_json::json!(n as f64 + 0.5)),
        ]
    }

    /// Whether `value` is an acceptable numeric date (a non-negative integer within the bound).
    fn date(value: &serde_json::Value) -> Option<u64> {
        value.as_u64().filter(|d| *d <= MAX_NUMERIC_DATE)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        /// Over extreme `exp`/`nbf`/`iat` values, `iss` and `aud` of every JSON type and a `crit` header, a
        /// correctly signed token is accepted exactly when every claim has the RFC type and a valid value, the
        /// answer is the same on a second try (the verified-token cache agrees with the first check), and
        /// nothing panics or overflows.
        #[test]
        fn extreme_claims_are_judged_consistently(
            exp in extreme(),
            nbf in proptest::option::of(extreme()),
            iat in proptest::option::of(extreme()),
            iss in prop_oneof![
                Just(serde_json::json!("bff-dev-idp")),
                Just(serde_json::json!(["bff-dev-idp"])),
                Just(serde_json::json!("other")),
                Just(serde_json::json!(7)),
            ],
            aud in prop_oneof![
                Just(serde_json::json!("bff-web")),
                Just(serde_json::json!(["x", "bff-web"])),
                Just(serde_json::json!(["bff-web", 7])),
                Just(serde_json::json!([])),
                Just(serde_json::json!({"aud": "bff-web"})),
            ],
            crit in proptest::option::of(proptest::collection::vec("[a-z]{1,5}", 0..2)),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let verifier = runtime.block_on(async { verifier() });
            let idp = mock_services::Idp::new(mock_services::IdpConfig::default()).unwrap();
            verifier.keys.install(&idp.jwks());
            let mut claims = serde_json::json!({"sub": "7", "iss": iss, "aud": aud, "exp": exp});
            if let Some(nbf) = &nbf {
                claims["nbf"] = nbf.clone();
            }
            if let Some(iat) = &iat {
                claims["iat"] = iat.clone();
            }
            let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
            header.kid = Some("ec-1".into());
            header.crit = crit.clone();
            let key = jsonwebtoken::EncodingKey::from_ec_pem(include_bytes!("../../../mock-services/keys/ec-1.pem")).unwrap();
            super::super::jwt_crypto::install();
            let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();

            let now = jsonwebtoken::get_current_timestamp();
            let leeway = verifier.config.leeway_s;
            // A date within 2 s of its boundary could be judged on either side of a second tick.
            let near = |d: Option<u64>, edge: u64| d.is_some_and(|d| d.abs_diff(edge) <= 2);
            prop_assume!(!near(exp.as_u64(), now.saturating_sub(leeway)));
            for d in [&nbf, &iat].into_iter().flatten() {
                prop_assume!(!near(d.as_u64(), now + leeway));
            }
            let valid = crit.is_none()
                && iss == serde_json::json!("bff-dev-idp")
                && (aud == serde_json::json!("bff-web") || aud == serde_json::json!(["x", "bff-web"]))
                && date(&exp).is_some_and(|e| e + leeway >= now)
                && nbf.as_ref().is_none_or(|n| date(n).is_some_and(|n| n <= now + leeway))
                && iat.as_ref().is_none_or(|i| date(i).is_some_and(|i| i <= now + leeway));
            let first = runtime.block_on(verifier.verify(&token));
            let second = runtime.block_on(verifier.verify(&token));
            prop_assert_eq!(first.is_ok(), valid, "{} → {:?}", claims, first);
            prop_assert_eq!(first.is_ok(), second.is_ok(), "{} → {:?} then {:?}", claims, first, second);
        }
    }

    /// The verified-token cache tells apart tokens that end alike (the hash reads only the tail; the
    /// lookup compares whole tokens), and a token hashes the same every time.
    #[test]
    fn tail_hash_spreads_but_never_merges() {
        use std::hash::BuildHasher;
        let cache: moka::sync::Cache<Arc<str>, u32, TailHash> = moka::sync::Cache::builder()
            .max_capacity(16)
            .build_with_hasher(TailHash::default());
        let tail = "x".repeat(TAIL);
        let (a, b) = (format!("a.{tail}"), format!("b.{tail}"));
        cache.insert(Arc::from(a.as_str()), 1);
        cache.insert(Arc::from(b.as_str()), 2);
        assert_eq!(
            (cache.get(a.as_str()), cache.get(b.as_str())),
            (Some(1), Some(2))
        );
        assert_eq!(cache.get(format!("c.{tail}").as_str()), None);
        let hasher = TailHash::default();
        assert_eq!(hasher.hash_one(a.as_str()), hasher.hash_one(a.as_str()));
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
