//! The authorization-code side of the dev identity provider (development and tests only): registered
//! clients, single-use authorization codes bound to a PKCE S256 challenge, rotating refresh tokens, IdP
//! sessions (`sid`) ended by `end_session`, and back-channel logout tokens.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// How long an authorization code may be redeemed.
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// Default lifetime of access and ID tokens issued by the code flow, in seconds.
pub const DEFAULT_ACCESS_TTL_S: u64 = 300;
/// The `events` member of a back-channel logout token.
pub const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Scopes that are about the OpenID protocol, not API permissions (left out of access tokens).
const PROTOCOL_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// A client registered with the dev IdP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcClient {
    /// `client_id`.
    pub client_id: String,
    /// Exact `redirect_uri` values accepted by `authorize`.
    pub redirect_uris: Vec<String>,
    /// Exact `post_logout_redirect_uri` values accepted by `end_session`.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Where back-channel logout tokens are POSTed, if anywhere.
    #[serde(default)]
    pub backchannel_logout_uri: Option<String>,
    /// The secret of a confidential client (`client_secret_basic` or `client_secret_post` at the token
    /// endpoint); `None` = a public client.
    #[serde(default)]
    pub client_secret: Option<String>,
}

/// An `authorize` request, as received.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthorizeRequest {
    /// Must be `code`.
    #[serde(default)]
    pub response_type: String,
    /// A registered client.
    #[serde(default)]
    pub client_id: String,
    /// One of the client's redirect URIs.
    #[serde(default)]
    pub redirect_uri: String,
    /// Requested scopes, space-separated (must include `openid`).
    #[serde(default)]
    pub scope: String,
    /// Echoed back to the client.
    #[serde(default)]
    pub state: Option<String>,
    /// Copied into the ID token.
    #[serde(default)]
    pub nonce: Option<String>,
    /// PKCE challenge: base64url(SHA-256(verifier)).
    #[serde(default)]
    pub code_challenge: String,
    /// Must be `S256`.
    #[serde(default)]
    pub code_challenge_method: String,
    /// The user id to approve at once (dev only); without it the dev login page is shown.
    #[serde(default)]
    pub login_hint: Option<String>,
}

/// A refused OAuth request: the RFC 6749 `error` code and a description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unsupported_grant_type`, …
    pub error: &'static str,
    /// Human-readable detail.
    pub description: String,
}

fn refuse(error: &'static str, description: impl Into<String>) -> OAuthError {
    OAuthError {
        error,
        description: description.into(),
    }
}

/// What an approved authorization code stands for.
#[derive(Debug, Clone)]
struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    sub: String,
    sid: String,
    scopes: Vec<String>,
    issued: Instant,
}

/// What a refresh token stands for.
#[derive(Debug, Clone)]
struct RefreshGrant {
    client_id: String,
    sub: String,
    sid: String,
    scopes: Vec<String>,
}

/// The tokens a grant yields, before signing: the IdP signs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Client (audience).
    pub client_id: String,
    /// Subject.
    pub sub: String,
    /// IdP session id.
    pub sid: String,
    /// API scopes of the access token.
    pub scopes: Vec<String>,
    /// `nonce` of the ID token (code grant only).
    pub nonce: Option<String>,
    /// The new refresh token.
    pub refresh_token: String,
    /// Whether an ID token is issued (the code grant; a refresh issues one too).
    pub id_token: bool,
}

/// The code-flow state of the IdP.
#[derive(Debug, Default)]
pub struct Grants {
    clients: HashMap<String, OidcClient>,
    codes: HashMap<String, CodeGrant>,
    refresh: HashMap<String, RefreshGrant>,
    /// Ended IdP sessions: their refresh tokens no longer work.
    ended: std::collections::HashSet<String>,
    /// Lifetime of code-flow access and ID tokens, in seconds.
    pub access_ttl_s: u64,
    /// Refresh-token grants answered successfully (for tests: one refresh per session at a time).
    pub refreshes: u64,
    /// Refresh-token grants refused.
    pub refused_refreshes: u64,
}

/// A random URL-safe token of 32 bytes.
fn random_token() -> String {
    let bytes: [u8; 32] = std::array::from_fn(|_| fastrand::u8(..));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// base64url(SHA-256(`verifier`)): the S256 PKCE challenge.
pub fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

impl Grants {
    /// Fresh state with the default token lifetime.
    pub fn new() -> Self {
        Grants {
            access_ttl_s: DEFAULT_ACCESS_TTL_S,
            ..Default::default()
        }
    }

    /// Registers (or replaces) a client.
    pub fn register(&mut self, client: OidcClient) {
        self.clients.insert(client.client_id.clone(), client);
    }

    /// The registered client `id`.
    pub fn client(&self, id: &str) -> Option<&OidcClient> {
        self.clients.get(id)
    }

    /// Every registered client.
    pub fn clients(&self) -> impl Iterator<Item = &OidcClient> {
        self.clients.values()
    }

    /// Checks an `authorize` request that may redirect back: a registered client and exact redirect URI.
    /// An error here is shown to the user, never redirected (it would be an open redirect).
    pub fn check_client(&self, req: &AuthorizeRequest) -> Result<(), OAuthError> {
        let client = self
            .clients
            .get(&req.client_id)
            .ok_or_else(|| refuse("invalid_client", "unknown client_id"))?;
        if !client.redirect_uris.contains(&req.redirect_uri) {
            return Err(refuse(
                "invalid_request",
                "redirect_uri is not registered for this client",
            ));
        }
        Ok(())
    }

    /// Checks the rest of an `authorize` request (errors go back to the client's redirect URI).
    pub fn check_request(req: &AuthorizeRequest) -> Result<(), OAuthError> {
        if req.response_type != "code" {
            return Err(refuse(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
        if !req.scope.split(' ').any(|s| s == "openid") {
            return Err(refuse("invalid_scope", "scope must include openid"));
        }
        if req.code_challenge_method != "S256" || req.code_challenge.len() != 43 {
            return Err(refuse(
                "invalid_request",
                "PKCE with code_challenge_method=S256 is required",
            ));
        }
        Ok(())
    }

    /// Approves `req` for user `sub` in IdP session `sid`: a new single-use code.
    pub fn approve(&mut self, req: &AuthorizeRequest, sub: &str, sid: &str) -> String {
        let now = Instant::now();
        self.codes
            .retain(|_, g| now.duration_since(g.issued) < CODE_TTL);
        self.ended.remove(sid);
        let code = random_token();
        let scopes = req
            .scope
            .split(' ')
            .filter(|s| !s.is_empty() && !PROTOCOL_SCOPES.contains(s))
            .map(str::to_owned)
            .collect();
        self.codes.insert(
            code.clone(),
            CodeGrant {
                client_id: req.client_id.clone(),
                redirect_uri: req.redirect_uri.clone(),
                challenge: req.code_challenge.clone(),
                nonce: req.nonce.clone(),
                sub: sub.to_owned(),
                sid: sid.to_owned(),
                scopes,
                issued: now,
            },
        );
        code
    }

    /// The `authorization_code` grant: the code is consumed whatever the outcome (single use).
    pub fn redeem_code(
        &mut self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<Issue, OAuthError> {
        let grant = self
            .codes
            .remove(code)
            .ok_or_else(|| refuse("invalid_grant", "unknown or already used code"))?;
        if grant.issued.elapsed() >= CODE_TTL {
            return Err(refuse("invalid_grant", "code expired"));
        }
        if grant.client_id != client_id || grant.redirect_uri != redirect_uri {
            return Err(refuse(
                "invalid_grant",
                "code was issued to another client or redirect_uri",
            ));
        }
        if !(43..=128).contains(&verifier.len()) || s256(verifier) != grant.challenge {
            return Err(refuse("invalid_grant", "PKCE verification failed"));
        }
        let refresh_token = random_token();
        self.refresh.insert(
            refresh_token.clone(),
            RefreshGrant {
                client_id: grant.client_id.clone(),
                sub: grant.sub.clone(),
                sid: grant.sid.clone(),
                scopes: grant.scopes.clone(),
            },
        );
        Ok(Issue {
            client_id: grant.client_id,
            sub: grant.sub,
            sid: grant.sid,
            scopes: grant.scopes,
            nonce: grant.nonce,
            refresh_token,
            id_token: true,
        })
    }

    /// The `refresh_token` grant: rotation (the presented token is consumed, a new one issued); a reused or
    /// unknown token, or one of an ended session, is refused.
    pub fn redeem_refresh(&mut self, token: &str, client_id: &str) -> Result<Issue, OAuthError> {
        let Some(grant) = self.refresh.remove(token) else {
            self.refused_refreshes += 1;
            return Err(refuse(
                "invalid_grant",
                "unknown or already used refresh token",
            ));
        };
        if grant.client_id != client_id || self.ended.contains(&grant.sid) {
            self.refused_refreshes += 1;
            return Err(refuse("invalid_grant", "refresh token not valid"));
        }
        let refresh_token = random_token();
        self.refresh.insert(refresh_token.clone(), grant.clone());
        self.refreshes += 1;
        Ok(Issue {
            client_id: grant.client_id,
            sub: grant.sub,
            sid: grant.sid,
            scopes: grant.scopes,
            nonce: None,
            refresh_token,
            id_token: true,
        })
    }

    /// Ends IdP session `sid`: its refresh tokens stop working.
    pub fn end_session(&mut self, sid: &str) {
        self.refresh.retain(|_, g| g.sid != sid);
        self.ended.insert(sid.to_owned());
    }

    /// Revokes every refresh token of `sub` (a test's "the IdP revoked this user").
    pub fn revoke_subject(&mut self, sub: &str) {
        self.refresh.retain(|_, g| g.sub != sub);
    }
}

/// A new random IdP session id.
pub fn new_sid() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(verifier: &str) -> AuthorizeRequest {
        AuthorizeRequest {
            response_type: "code".into(),
            client_id: "web".into(),
            redirect_uri: "http://app/cb".into(),
            scope: "openid orders:read".into(),
            code_challenge: s256(verifier),
            code_challenge_method: "S256".into(),
            ..Default::default()
        }
    }

    #[test]
    fn codes_are_single_use_and_pkce_bound() {
        let mut g = Grants::new();
        g.register(OidcClient {
            client_id: "web".into(),
            redirect_uris: vec!["http://app/cb".into()],
            post_logout_redirect_uris: vec![],
            backchannel_logout_uri: None,
            client_secret: None,
        });
        let verifier = "v".repeat(43);
        let req = request(&verifier);
        assert!(g.check_client(&req).is_ok());
        assert!(Grants::check_request(&req).is_ok());
        let code = g.approve(&req, "7", "s1");
        let bad = g.redeem_code(&code, "web", "http://app/cb", &"w".repeat(43));
        assert_eq!(bad.unwrap_err().error, "invalid_grant");
        // The failed attempt consumed the code.
        assert!(
            g.redeem_code(&code, "web", "http://app/cb", &verifier)
                .is_err()
        );
        let code = g.approve(&req, "7", "s1");
        let issued = g
            .redeem_code(&code, "web", "http://app/cb", &verifier)
            .unwrap();
        assert_eq!(issued.scopes, ["orders:read"]);
        assert!(
            g.redeem_code(&code, "web", "http://app/cb", &verifier)
                .is_err()
        );
        let next = g.redeem_refresh(&issued.refresh_token, "web").unwrap();
        assert!(g.redeem_refresh(&issued.refresh_token, "web").is_err());
        g.end_session("s1");
        assert!(g.redeem_refresh(&next.refresh_token, "web").is_err());
        assert_eq!((g.refreshes, g.refused_refreshes), (1, 2));
    }
}
