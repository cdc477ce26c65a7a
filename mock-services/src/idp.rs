//! The dev identity provider: a pool of embedded RSA and EC signing keys, key rotation with a grace
//! period, the JWKS document and token minting.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use shared_schemas::downstream::{TokenRequest, TokenResponse};

/// Default issuer (`iss`) of minted tokens.
pub const DEFAULT_ISSUER: &str = "bff-dev-idp";
/// Default lifetime of minted tokens in seconds.
pub const DEFAULT_TTL_S: u64 = 300;
/// Maximum lifetime of minted tokens in seconds.
pub const MAX_TTL_S: u64 = 86_400;
/// Default time a rotated-out key stays in the JWKS.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(300);

const PEMS: [(&str, Algorithm, &str); 6] = [
    ("rsa-1", Algorithm::RS256, include_str!("../keys/rsa-1.pem")),
    ("rsa-2", Algorithm::RS256, include_str!("../keys/rsa-2.pem")),
    ("rsa-3", Algorithm::RS256, include_str!("../keys/rsa-3.pem")),
    ("ec-1", Algorithm::ES256, include_str!("../keys/ec-1.pem")),
    ("ec-2", Algorithm::ES256, include_str!("../keys/ec-2.pem")),
    ("ec-3", Algorithm::ES256, include_str!("../keys/ec-3.pem")),
];
/// Number of keys per family in the pool.
const POOL: usize = 3;

/// Configuration of the identity provider.
#[derive(Debug, Clone, PartialEq)]
pub struct IdpConfig {
    /// `iss` of minted tokens (default [`DEFAULT_ISSUER`]).
    pub issuer: String,
    /// How long a rotated-out key stays published (default [`DEFAULT_GRACE`]).
    pub grace: Duration,
    /// `jwks_uri` announced by the OpenID discovery document; `None` = this service's own JWKS URL.
    pub jwks_uri: Option<String>,
}

impl Default for IdpConfig {
    fn default() -> Self {
        IdpConfig {
            issuer: DEFAULT_ISSUER.to_owned(),
            grace: DEFAULT_GRACE,
            jwks_uri: None,
        }
    }
}

/// `POST /token` body: the fields of [`TokenRequest`] plus test knobs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MintRequest {
    /// Subject (user id).
    pub sub: String,
    /// Audience (the client), e.g. `bff-web`.
    pub aud: String,
    /// Granted scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Lifetime in seconds (default 300, max 86400).
    #[serde(default)]
    pub ttl_s: Option<u64>,
    /// `RS256` (default) or `ES256`.
    #[serde(default)]
    pub alg: Option<String>,
    /// Overrides the issuer.
    #[serde(default)]
    pub iss: Option<String>,
    /// Shifts `iat`, `nbf` and `exp` by this many seconds (negative: a token from the past).
    #[serde(default)]
    pub time_offset_s: i64,
    /// Leaves out the `exp` claim.
    #[serde(default)]
    pub omit_exp: bool,
}

impl From<TokenRequest> for MintRequest {
    fn from(r: TokenRequest) -> Self {
        MintRequest {
            sub: r.sub,
            aud: r.aud,
            scopes: r.scopes,
            ttl_s: r.ttl_s,
            alg: r.alg,
            ..Default::default()
        }
    }
}

/// The claims of a minted token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Subject.
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before (Unix seconds).
    pub nbf: i64,
    /// Expiry (Unix seconds); absent with `omit_exp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Space-separated scopes.
    pub scope: String,
    /// Scopes as an array.
    pub scopes: Vec<String>,
    /// Random token id.
    pub jti: String,
}

/// The kids signing new tokens, returned by a rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveKids {
    /// Active RSA key (RS256).
    pub rsa: String,
    /// Active EC key (ES256).
    pub ec: String,
    /// Seconds the previous keys stay published.
    pub grace_s: u64,
}

/// Why a token could not be minted (a client error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintError(pub String);

impl std::fmt::Display for MintError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MintError {}

struct KeyMaterial {
    kid: &'static str,
    alg: Algorithm,
    key: EncodingKey,
    jwk: Jwk,
}

#[derive(Debug)]
struct Rotation {
    rsa: usize,
    ec: usize,
    /// Rotated-out keys (index into the pool) and when they stop being published.
    retired: Vec<(usize, Instant)>,
}

/// The identity provider's key state; cheap to clone (shared).
#[derive(Clone)]
pub struct Idp {
    config: IdpConfig,
    keys: Arc<Vec<KeyMaterial>>,
    rotation: Arc<Mutex<Rotation>>,
    /// The authorization-code flow's clients, codes, refresh tokens and sessions.
    grants: Arc<Mutex<crate::oidc::Grants>>,
}

impl std::fmt::Debug for Idp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idp")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Idp {
    /// Loads the embedded key pool; `rsa-1` and `ec-1` start active.
    pub fn new(config: IdpConfig) -> Result<Self, jsonwebtoken::errors::Error> {
        bff_core::auth::jwt_crypto::install();
        let keys = PEMS
            .iter()
            .map(|&(kid, alg, pem)| {
                let key = match alg {
                    Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes())?,
                    _ => EncodingKey::from_rsa_pem(pem.as_bytes())?,
                };
                let mut jwk = Jwk::from_encoding_key(&key, alg)?;
                jwk.common.key_id = Some(kid.to_owned());
                jwk.common.public_key_use = Some(PublicKeyUse::Signature);
                Ok(KeyMaterial { kid, alg, key, jwk })
            })
            .collect::<Result<Vec<_>, jsonwebtoken::errors::Error>>()?;
        Ok(Idp {
            config,
            keys: Arc::new(keys),
            rotation: Arc::new(Mutex::new(Rotation {
                rsa: 0,
                ec: POOL,
                retired: Vec::new(),
            })),
            grants: Arc::new(Mutex::new(crate::oidc::Grants::new())),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &IdpConfig {
        &self.config
    }

    fn rotation(&self) -> std::sync::MutexGuard<'_, Rotation> {
        let mut r = self.rotation.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        r.retired.retain(|(_, until)| *until > now);
        r
    }

    /// The currently active kids.
    pub fn active(&self) -> ActiveKids {
        let r = self.rotation();
        ActiveKids {
            rsa: self.keys[r.rsa].kid.to_owned(),
            ec: self.keys[r.ec].kid.to_owned(),
            grace_s: self.config.grace.as_secs(),
        }
    }

    /// Advances both families to the next key of the pool (wrapping); the previous keys stay published
    /// for `grace` (default: the configured grace).
    pub fn rotate(&self, grace: Option<Duration>) -> ActiveKids {
        let grace = grace.unwrap_or(self.config.grace);
        let now = Instant::now();
        // Absurdly long grace periods saturate at ~100 years instead of overflowing.
        let until = now
            .checked_add(grace)
            .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
            .unwrap_or(now);
        let mut r = self.rotation();
        let (old_rsa, old_ec) = (r.rsa, r.ec);
        r.rsa = (old_rsa + 1) % POOL;
        r.ec = POOL + (old_ec - POOL + 1) % POOL;
        r.retired.retain(|(i, _)| *i != old_rsa && *i != old_ec);
        if !grace.is_zero() {
            r.retired.push((old_rsa, until));
            r.retired.push((old_ec, until));
        }
        let (rsa, ec) = (r.rsa, r.ec);
        r.retired.retain(|(i, _)| *i != rsa && *i != ec);
        ActiveKids {
            rsa: self.keys[rsa].kid.to_owned(),
            ec: self.keys[ec].kid.to_owned(),
            grace_s: grace.as_secs(),
        }
    }

    /// The published keys: the active ones, then those still in their grace period.
    pub fn jwks(&self) -> JwkSet {
        let r = self.rotation();
        let mut indices = vec![r.rsa, r.ec];
        indices.extend(r.retired.iter().map(|(i, _)| *i));
        JwkSet {
            keys: indices
                .into_iter()
                .map(|i| self.keys[i].jwk.clone())
                .collect(),
        }
    }

    /// The code flow's state (clients, codes, refresh tokens, sessions, counters).
    pub fn grants(&self) -> std::sync::MutexGuard<'_, crate::oidc::Grants> {
        self.grants.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Signs arbitrary `claims` with the active RSA key.
    pub fn sign(&self, claims: &serde_json::Value) -> Result<String, MintError> {
        let material = &self.keys[self.rotation().rsa];
        let mut header = Header::new(material.alg);
        header.kid = Some(material.kid.to_owned());
        jsonwebtoken::encode(&header, claims, &material.key)
            .map_err(|e| MintError(format!("signing failed: {e}")))
    }

    /// The token response of a code-flow grant: access token (audience = the client), ID token (with the
    /// `nonce` of the authorization request), the rotated refresh token.
    pub fn issue(&self, issue: &crate::oidc::Issue) -> Result<serde_json::Value, MintError> {
        let ttl = self.grants().access_ttl_s;
        let now = unix_now();
        let access = self.sign(&serde_json::json!({
            "iss": self.config.issuer, "sub": issue.sub, "aud": issue.client_id,
            "iat": now, "nbf": now, "exp": now + ttl as i64,
            "scope": issue.scopes.join(" "), "scopes": issue.scopes, "sid": issue.sid,
            "jti": crate::oidc::new_sid(),
        }))?;
        let mut id = serde_json::json!({
            "iss": self.config.issuer, "sub": issue.sub, "aud": issue.client_id,
            "iat": now, "exp": now + ttl as i64, "sid": issue.sid,
            "name": display_name(&issue.sub),
        });
        if let Some(nonce) = &issue.nonce {
            id["nonce"] = serde_json::json!(nonce);
        }
        Ok(serde_json::json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ttl,
            "refresh_token": issue.refresh_token,
            "id_token": self.sign(&id)?,
            "scope": issue.scopes.join(" "),
        }))
    }

    /// A signed back-channel logout token for `client_id` naming `sub` and/or `sid`.
    pub fn logout_token(
        &self,
        client_id: &str,
        sub: Option<&str>,
        sid: Option<&str>,
    ) -> Result<String, MintError> {
        let now = unix_now();
        let mut claims = serde_json::json!({
            "iss": self.config.issuer, "aud": client_id, "iat": now, "exp": now + 120,
            "jti": crate::oidc::new_sid(),
            "events": { crate::oidc::BACKCHANNEL_EVENT: {} },
        });
        if let Some(sub) = sub {
            claims["sub"] = serde_json::json!(sub);
        }
        if let Some(sid) = sid {
            claims["sid"] = serde_json::json!(sid);
        }
        self.sign(&claims)
    }

    /// Mints a signed token.
    pub fn mint(&self, req: &MintRequest) -> Result<TokenResponse, MintError> {
        let ttl = req.ttl_s.unwrap_or(DEFAULT_TTL_S);
        if ttl > MAX_TTL_S {
            return Err(MintError(format!("ttl_s must be at most {MAX_TTL_S}")));
        }
        let index = {
            let r = self.rotation();
            match req.alg.as_deref() {
                None | Some("RS256") => r.rsa,
                Some("ES256") => r.ec,
                Some(other) => {
                    return Err(MintError(format!(
                        "unsupported alg {other:?}, use RS256 or ES256"
                    )));
                }
            }
        };
        let material = &self.keys[index];
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let now = now.saturating_add(req.time_offset_s);
        let claims = Claims {
            iss: req
                .iss
                .clone()
                .unwrap_or_else(|| self.config.issuer.clone()),
            sub: req.sub.clone(),
            aud: req.aud.clone(),
            iat: now,
            nbf: now,
            exp: (!req.omit_exp).then(|| now.saturating_add(ttl as i64)),
            scope: req.scopes.join(" "),
            scopes: req.scopes.clone(),
            jti: format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
        };
        let mut header = Header::new(material.alg);
        header.kid = Some(material.kid.to_owned());
        let token = jsonwebtoken::encode(&header, &claims, &material.key)
            .map_err(|e| MintError(format!("signing failed: {e}")))?;
        Ok(TokenResponse {
            access_token: token,
            token_type: "Bearer".to_owned(),
            expires_in: ttl,
        })
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The display name of dev user `sub` (the users service's names), or the id itself.
pub fn display_name(sub: &str) -> String {
    match sub.parse::<u32>() {
        Ok(id) if crate::data::users::user_exists(id) => {
            let (first, last) = crate::data::users::names(id);
            format!("{first} {last}")
        }
        _ => format!("user {sub}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_previous_in_grace() {
        let idp = Idp::new(IdpConfig::default()).expect("keys");
        let kids = |idp: &Idp| -> Vec<String> {
            idp.jwks()
                .keys
                .iter()
                .filter_map(|k| k.common.key_id.clone())
                .collect()
        };
        assert_eq!(kids(&idp), ["rsa-1", "ec-1"]);
        let a = idp.rotate(None);
        assert_eq!((a.rsa.as_str(), a.ec.as_str()), ("rsa-2", "ec-2"));
        assert_eq!(kids(&idp), ["rsa-2", "ec-2", "rsa-1", "ec-1"]);
        idp.rotate(Some(Duration::ZERO));
        assert_eq!(kids(&idp), ["rsa-3", "ec-3", "rsa-1", "ec-1"]);
        idp.rotate(None);
        assert_eq!(kids(&idp), ["rsa-1", "ec-1", "rsa-3", "ec-3"]);
    }

    #[test]
    fn huge_grace_does_not_overflow() {
        let idp = Idp::new(IdpConfig::default()).expect("keys");
        let kids = idp.rotate(Some(Duration::from_secs(u64::MAX)));
        assert_eq!(kids.rsa, "rsa-2");
        assert_eq!(idp.jwks().keys.len(), 4);
    }

    #[test]
    fn rejects_bad_requests() {
        let idp = Idp::new(IdpConfig::default()).expect("keys");
        let req = MintRequest {
            sub: "1".into(),
            aud: "bff-web".into(),
            ..Default::default()
        };
        assert!(
            idp.mint(&MintRequest {
                alg: Some("HS256".into()),
                ..req.clone()
            })
            .is_err()
        );
        assert!(
            idp.mint(&MintRequest {
                ttl_s: Some(86_401),
                ..req.clone()
            })
            .is_err()
        );
        assert!(idp.mint(&req).is_ok());
    }
}
