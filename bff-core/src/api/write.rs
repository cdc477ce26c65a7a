//! [`Write`]: the extractor of a command route — runs the handler's one command under the request's
//! `Idempotency-Key` (see [`crate::idempotency`]), fingerprinted by method, path and typed body; and
//! [`Command<T>`]: the same with the typed JSON body ([`crate::body::JsonBody`]) in one extractor.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{Required, Type};

use crate::body::{JsonBody, Validate};
use crate::context::RequestContext;
use crate::error::BffError;
use crate::idempotency::{ForwardedKey, Idempotency, KeyRule};

/// A write request: its context, headers and the gateway's idempotency records.
#[derive(Debug)]
pub struct Write {
    ctx: RequestContext,
    headers: HeaderMap,
    request: String,
    idempotency: Arc<Idempotency>,
}

impl Write {
    /// Runs `command` at most once per `Idempotency-Key` (`rule`: whether the key is required); a retry with
    /// the same key gets the first answer (`idempotent-replayed: true`). `command` gets the key to forward.
    pub async fn run<B, F, Fut, R>(&self, rule: KeyRule, body: &B, command: F) -> Response
    where
        B: Serialize + ?Sized,
        F: FnOnce(ForwardedKey) -> Fut,
        Fut: Future<Output = R>,
        R: IntoResponse,
    {
        let command = |key| async { command(key).await.into_response() };
        (self.idempotency)
            .run(&self.ctx, &self.headers, rule, &self.request, body, command)
            .await
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Write {
    type Rejection = BffError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, BffError> {
        let ctx = RequestContext::from_request_parts(parts, state).await?;
        let idempotency = parts
            .extensions
            .get::<Arc<Idempotency>>()
            .cloned()
            .ok_or_else(|| {
                tracing::error!("idempotency records missing: the router was not built by Gateway");
                BffError::Internal
            })?;
        Ok(Self {
            ctx,
            headers: parts.headers.clone(),
            request: format!("{} {}", parts.method, parts.uri.path()),
            idempotency,
        })
    }
}

/// Documents the optional `Idempotency-Key` header (core then documents its 409 and 422).
impl IntoParams for Write {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let schema = utoipa::openapi::ObjectBuilder::new().schema_type(Type::String);
        vec![
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Recommended: a retry with the same key is answered once, from the first attempt",
                ))
                .schema(Some(schema))
                .build(),
        ]
    }
}

/// A command request: its validated JSON body `T` (415 / 400 / 413 / 422 before the handler runs) and the
/// [`Write`] that runs it under the `Idempotency-Key`.
#[derive(Debug)]
pub struct Command<T> {
    /// The typed, validated body.
    pub body: T,
    write: Write,
}

impl<T: Serialize> Command<T> {
    /// Runs `command` at most once per `Idempotency-Key` (see [`Write::run`]), fingerprinted with the body.
    pub async fn run<F, Fut, R>(&self, rule: KeyRule, command: F) -> Response
    where
        F: FnOnce(ForwardedKey) -> Fut,
        Fut: Future<Output = R>,
        R: IntoResponse,
    {
        self.write.run(rule, &self.body, command).await
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Validate> FromRequest<S> for Command<T> {
    type Rejection = BffError;

    async fn from_request(request: Request, state: &S) -> Result<Self, BffError> {
        let (mut parts, body) = request.into_parts();
        let write = Write::from_request_parts(&mut parts, state).await?;
        let JsonBody(body) =
            JsonBody::from_request(Request::from_parts(parts, body), state).await?;
        Ok(Self { body, write })
    }
}

/// Documents the optional `Idempotency-Key` header, as [`Write`] does.
impl<T> IntoParams for Command<T> {
    fn into_params(parameter_in: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        Write::into_params(parameter_in)
    }
}
