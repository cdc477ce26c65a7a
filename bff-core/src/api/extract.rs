//! Extractors whose rejections are problem documents: the verified [`Caller`], [`Path`] (404 when the path
//! does not parse), [`Query`] (400 `bad_request`), and [`Id`] (404 for an id that cannot name a resource,
//! without any downstream call).

use std::fmt;
use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::auth::Identity;
use crate::context::RequestContext;
use crate::downstream::encode_segment;
use crate::error::BffError;

/// The verified caller of the request (401 without one).
#[derive(Debug, Clone)]
pub struct Caller {
    identity: Identity,
    segment: String,
}

impl Caller {
    /// The verified identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The caller's subject (user id, or partner id for API keys), percent-encoded as one path segment:
    /// ready for `format!("/users/{}", caller.user())`.
    pub fn user(&self) -> &str {
        &self.segment
    }

    /// The caller's subject as verified (not encoded), for comparisons with downstream data.
    pub fn subject(&self) -> &str {
        &self.identity.subject
    }

    /// The partner id of a partner credential (API key or client certificate), else `None`.
    pub fn partner_id(&self) -> Option<&str> {
        self.identity.partner.as_ref().map(|p| p.id.as_str())
    }

    /// Whether the credential grants every one of `scopes` (for optional enrichment; a route's required
    /// scopes are declared on the route, see [`crate::api::Api`]).
    pub fn has_scopes(&self, scopes: &[&str]) -> bool {
        self.identity.has_scopes(scopes)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = BffError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, BffError> {
        let ctx = RequestContext::from_request_parts(parts, state).await?;
        let identity = ctx.require_identity()?.clone();
        let segment = encode_segment(&identity.subject);
        Ok(Self { identity, segment })
    }
}

/// Path parameters deserialized into `T`; a path that does not deserialize names no resource: 404.
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = BffError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, BffError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|_| BffError::NotFound)
    }
}

/// The query string deserialized into `T`; a malformed or (with `deny_unknown_fields`) unknown parameter is
/// a 400 `bad_request` (the parser's message stays internal).
#[derive(Debug, Clone)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = BffError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, BffError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|_| BffError::BadRequest {
                detail: "a query parameter is unknown or malformed".into(),
            })
    }
}

/// What an id of a resource looks like. Implementations accept only URL-unreserved characters.
pub trait IdFormat: Send + Sync + 'static {
    /// Whether `id` can name a resource.
    fn is_valid(id: &str) -> bool;
}

/// Ids of 1 to `MAX` ASCII digits.
#[derive(Debug, Clone, Copy)]
pub struct Digits<const MAX: usize>;

impl<const MAX: usize> IdFormat for Digits<MAX> {
    fn is_valid(id: &str) -> bool {
        (1..=MAX).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())
    }
}

/// Opaque ids: 1 to 64 ASCII letters, digits, `-` and `_`.
#[derive(Debug, Clone, Copy)]
pub struct Opaque;

impl IdFormat for Opaque {
    fn is_valid(id: &str) -> bool {
        (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }
}

/// The one path parameter of a route, checked against the id format `F`: a malformed id names no resource,
/// so it is a 404 `not_found` before any downstream call. Displays as its path segment (percent-encoded),
/// ready for `format!("/products/{id}")`.
pub struct Id<F: IdFormat = Opaque>(String, PhantomData<fn() -> F>);

impl<F: IdFormat> Id<F> {
    /// `id` when it has the format `F`.
    pub fn parse(id: &str) -> Option<Self> {
        F::is_valid(id).then(|| Self(id.to_owned(), PhantomData))
    }

    /// The id as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<F: IdFormat> fmt::Display for Id<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode_segment(&self.0))
    }
}

impl<F: IdFormat> fmt::Debug for Id<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Id").field(&self.0).finish()
    }
}

impl<F: IdFormat> Clone for Id<F> {
    fn clone(&self) -> Self {
        Self(self.0.clone(), PhantomData)
    }
}

impl<F: IdFormat> std::ops::Deref for Id<F> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<F: IdFormat, S: Send + Sync> FromRequestParts<S> for Id<F> {
    type Rejection = BffError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, BffError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state).await?;
        Self::parse(&id).ok_or(BffError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Digits ids are bounded digit strings; opaque ids are bounded unreserved strings; the display is the
    /// path segment.
    #[test]
    fn id_formats() {
        assert!(Id::<Digits<32>>::parse("42").is_some());
        assert!(Id::<Digits<32>>::parse(&"9".repeat(32)).is_some());
        for bad in ["", "1a", "../1", "%31", "-1", " 1", "１", &"9".repeat(33)] {
            assert!(Id::<Digits<32>>::parse(bad).is_none(), "{bad:?}");
        }
        assert!(Id::<Opaque>::parse("ab-C_9").is_some());
        for bad in ["", "a/b", "a b", "a.b", "ä", &"a".repeat(65)] {
            assert!(Id::<Opaque>::parse(bad).is_none(), "{bad:?}");
        }
        let id = Id::<Opaque>::parse("ab-1").unwrap();
        assert_eq!(format!("/x/{id}"), "/x/ab-1");
        assert_eq!(id.as_str(), "ab-1");
    }
}
