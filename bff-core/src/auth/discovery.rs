//! Where the JWKS comes from: a fixed path on the identity downstream, or OpenID Connect discovery
//! (`[auth.jwt] discovery = true`): the identity downstream's `/.well-known/openid-configuration` names the
//! `jwks_uri`, which may live on another host (fetched with the identity downstream's policy and TLS
//! settings). The discovered location is kept until a JWKS fetch from it fails, then discovered again.

use std::sync::RwLock;

use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;

use crate::context::RequestContext;
use crate::downstream::config::DownstreamConfig;
use crate::downstream::{Downstream, DownstreamError, DownstreamErrorKind, HttpClient};

/// Path of the OpenID Provider metadata, relative to the identity downstream's URL.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// The source of the signing keys.
#[derive(Debug)]
pub enum JwksSource {
    /// `GET <jwks_path>` on this downstream (`auth.jwt.jwks_path`).
    Direct(Downstream),
    /// OpenID Connect discovery.
    Discovery(Box<Discovery>),
}

impl From<Downstream> for JwksSource {
    fn from(downstream: Downstream) -> Self {
        Self::Direct(downstream)
    }
}

impl JwksSource {
    /// Fetches the JWKS (`path` is the configured `jwks_path`, used without discovery).
    pub(crate) async fn fetch(
        &self,
        ctx: &RequestContext,
        path: &str,
    ) -> Result<JwkSet, DownstreamError> {
        match self {
            Self::Direct(downstream) => downstream.get_json_uncached(ctx, path).await,
            Self::Discovery(discovery) => discovery.fetch(ctx).await,
        }
    }
}

/// OpenID Connect discovery of the JWKS location.
#[derive(Debug)]
pub struct Discovery {
    /// The downstream serving the discovery document.
    identity: Downstream,
    /// Its configuration: the policy (timeouts, size cap) of a `jwks_uri` on another origin.
    config: DownstreamConfig,
    /// Its client (TLS settings, pool).
    client: HttpClient,
    /// The issuer the document must announce (`auth.jwt.issuer`).
    issuer: String,
    /// The discovered JWKS location: downstream and path.
    resolved: RwLock<Option<(Downstream, String)>>,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
}

impl Discovery {
    /// Discovery through `identity` (configured by `config`, calling with `client`), requiring `issuer`.
    pub fn new(
        identity: Downstream,
        config: DownstreamConfig,
        client: HttpClient,
        issuer: String,
    ) -> Self {
        Self {
            identity,
            config,
            client,
            issuer,
            resolved: RwLock::new(None),
        }
    }

    async fn fetch(&self, ctx: &RequestContext) -> Result<JwkSet, DownstreamError> {
        let known = self
            .resolved
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (downstream, path) = match known {
            Some(location) => location,
            None => {
                let location = self.discover(ctx).await?;
                *self.resolved.write().unwrap_or_else(|e| e.into_inner()) = Some(location.clone());
                location
            }
        };
        let result = downstream.get_json_uncached(ctx, &path).await;
        if result.is_err() {
            // The location may have moved: discover again next time.
            *self.resolved.write().unwrap_or_else(|e| e.into_inner()) = None;
        }
        result
    }

    async fn discover(
        &self,
        ctx: &RequestContext,
    ) -> Result<(Downstream, String), DownstreamError> {
        let bad = |reason: &str| {
            tracing::warn!(reason, "OpenID discovery document refused");
            DownstreamError::new(self.identity.name(), DownstreamErrorKind::Decode)
        };
        let metadata: Metadata = self.identity.get_json_uncached(ctx, DISCOVERY_PATH).await?;
        if metadata.issuer != self.issuer {
            return Err(bad("`issuer` is not the configured auth.jwt.issuer"));
        }
        let base = url::Url::parse(&self.config.url).map_err(|_| bad("identity URL"))?;
        let jwks =
            url::Url::parse(&metadata.jwks_uri).map_err(|_| bad("`jwks_uri` is not a URL"))?;
        // Plain HTTP only when the identity provider itself is configured over plain HTTP (development).
        if !(jwks.scheme() == "https" || (jwks.scheme() == "http" && base.scheme() == "http"))
            || jwks.host().is_none()
        {
            return Err(bad("`jwks_uri` must be an https URL"));
        }
        let mut path = jwks.path().to_owned();
        if let Some(query) = jwks.query() {
            path = format!("{path}?{query}");
        }
        if jwks.origin() == base.origin() && base.path().trim_end_matches('/').is_empty() {
            tracing::info!(jwks_uri = %jwks, "JWKS location discovered");
            return Ok((self.identity.clone(), path));
        }
        let origin = jwks.origin().ascii_serialization();
        let config = DownstreamConfig {
            url: origin,
            ..self.config.clone()
        };
        let name = format!("{} (jwks_uri)", self.identity.name());
        tracing::info!(jwks_uri = %jwks, "JWKS location discovered on another origin");
        Ok((Downstream::new(&name, &config, self.client.clone()), path))
    }
}
