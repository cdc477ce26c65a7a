//! Authentication (who is calling) and coarse authorization (may they call this route): JWT bearer tokens or
//! partner API keys or partner client certificates (mTLS), turned into one [`Identity`] that handlers read from the request context and that
//! downstream calls carry as identity headers.

mod api_key;
mod client_cert;
pub mod config;
pub mod discovery;
mod identity;
pub(crate) use identity::{NO_IDENTITY_HEADERS, Verified, is_header_safe};
pub mod jwt;
pub mod jwt_crypto;

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, header};

pub use api_key::{ApiKeys, hash_key};
pub use client_cert::ClientCerts;
pub use identity::{
    CLIENT_HEADER, IDENTITY_HEADER_PREFIX, Identity, IdentityHeaders, PARTNER_ID_HEADER,
    PARTNER_TIER_HEADER, Partner, SCOPES_HEADER, USER_ID_HEADER,
};
pub use jwt::JwtVerifier;

use crate::error::BffError;
use crate::tls::ClientCertificate;

/// Header carrying a partner API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The credential check a gateway applies to every non-public route.
#[derive(Debug, Clone)]
pub enum Authenticator {
    /// Everyone is anonymous (development only).
    None,
    /// `Authorization: Bearer <JWT>`.
    Jwt(std::sync::Arc<JwtVerifier>),
    /// `x-api-key: <key>`.
    ApiKey(std::sync::Arc<ApiKeys>),
    /// A verified client certificate mapped to a partner; with `keys`, a caller without a matching
    /// certificate may use an API key instead.
    ClientCert {
        /// The certificate-to-partner mappings.
        certs: std::sync::Arc<ClientCerts>,
        /// API keys accepted from callers without a matching certificate.
        keys: Option<std::sync::Arc<ApiKeys>>,
    },
}

fn single_header(
    headers: &HeaderMap,
    name: impl header::AsHeaderName,
) -> Result<Option<&str>, BffError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BffError::Unauthenticated {
            reason: "more than one credential",
        });
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| BffError::Unauthenticated {
            reason: "malformed credential",
        })
}

impl Authenticator {
    /// The `WWW-Authenticate` challenge of a 401 (RFC 9110 §11.6.1), naming the credential this gateway
    /// takes: `Bearer` (RFC 6750) for JWTs, `ApiKey header="x-api-key"` for API keys (no registered scheme
    /// exists; the parameter names the header), `ClientCertificate` for mTLS only. With authentication off
    /// a 401 can only come from an aggregation that needs a caller, which a bearer token would satisfy.
    pub fn challenge(&self) -> HeaderValue {
        match self {
            Self::None | Self::Jwt(_) => HeaderValue::from_static("Bearer"),
            Self::ApiKey(_) | Self::ClientCert { keys: Some(_), .. } => {
                HeaderValue::from_static("ApiKey header=\"x-api-key\"")
            }
            Self::ClientCert { keys: None, .. } => HeaderValue::from_static("ClientCertificate"),
        }
    }

    /// The verified identity of the request, `Ok(None)` when authentication is off, or 401. `client_cert`
    /// is the certificate the caller's TLS connection presented (verified in the handshake), if any.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        client_cert: Option<&ClientCertificate>,
    ) -> Result<Option<Identity>, BffError> {
        let verified = self.authenticate_shared(headers, client_cert).await?;
        Ok(verified.map(Verified::into_identity))
    }

    /// [`Self::authenticate`], the identity with its downstream headers rendered; a remembered bearer token
    /// gives the one shared by every request presenting it (what the edge uses).
    pub(crate) async fn authenticate_shared(
        &self,
        headers: &HeaderMap,
        client_cert: Option<&ClientCertificate>,
    ) -> Result<Option<Arc<Verified>>, BffError> {
        match self {
            Self::None => Ok(None),
            Self::Jwt(verifier) => {
                let value = single_header(headers, header::AUTHORIZATION)?.ok_or(
                    BffError::Unauthenticated {
                        reason: "bearer token required",
                    },
                )?;
                let (scheme, token) = value.split_once(' ').ok_or(BffError::Unauthenticated {
                    reason: "malformed authorization header",
                })?;
                if !scheme.eq_ignore_ascii_case("bearer") {
                    return Err(BffError::Unauthenticated {
                        reason: "bearer token required",
                    });
                }
                verifier.verify_shared(token.trim()).await.map(Some)
            }
            Self::ApiKey(keys) => api_key(keys, headers).map(|i| Some(Verified::new(i))),
            Self::ClientCert { certs, keys } => {
                if let Some(identity) = client_cert.and_then(|c| certs.verify(c)) {
                    return Ok(Some(Verified::new(identity)));
                }
                match keys {
                    Some(keys) if client_cert.is_none() || headers.contains_key(API_KEY_HEADER) => {
                        api_key(keys, headers).map(|i| Some(Verified::new(i)))
                    }
                    _ => Err(BffError::Unauthenticated {
                        reason: if client_cert.is_some() {
                            "unknown client certificate"
                        } else {
                            "client certificate required"
                        },
                    }),
                }
            }
        }
    }
}

fn api_key(keys: &ApiKeys, headers: &HeaderMap) -> Result<Identity, BffError> {
    let key = single_header(headers, API_KEY_HEADER)?.ok_or(BffError::Unauthenticated {
        reason: "API key required",
    })?;
    keys.verify(key).ok_or(BffError::Unauthenticated {
        reason: "unknown API key",
    })
}

/// Removes every client-sent header in the gateway's identity namespace (`x-bff-*`).
pub fn strip_identity_headers(headers: &mut HeaderMap) {
    let names: Vec<_> = headers
        .keys()
        .filter(|n| n.as_str().starts_with(IDENTITY_HEADER_PREFIX))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

impl crate::context::RequestContext {
    /// 401 without an identity, 403 when it lacks any of `scopes`; call first thing in a handler.
    pub fn require_scopes(&self, scopes: &[&str]) -> Result<&Identity, BffError> {
        let identity = self.require_identity()?;
        if identity.has_scopes(scopes) {
            Ok(identity)
        } else {
            tracing::info!(subject = %identity.subject, required = ?scopes, "missing scope");
            Err(BffError::Forbidden)
        }
    }
}
