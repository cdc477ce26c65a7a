//! [`Write`]: the extractor of a command route — runs the handler's one command under the request's
//! `Idempotency-Key` (see [`crate::idempotency`]), fingerprinted by method, path and typed body.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::IntoParams;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{Required, Type};

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
