//! Declarative aggregation from config (the KrakenD-style endpoint, no Rust needed): `GET path` calls every
//! part in parallel under the request deadline and merges the JSON answers, either nested under the part
//! names or flattened into one object. Merging works on the top level only (`RawValue`): part bodies are
//! validated but never fully parsed and re-serialised.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde_json::value::RawValue;

use crate::config::{AggregateConfig, MergeMode};
use crate::context::RequestContext;
use crate::downstream::Downstream;
use crate::error::BffError;
use crate::routes::fill_path;

struct Part {
    /// Leaked once at start-up: part names are `'static` labels in errors and `bff-partial`.
    name: &'static str,
    downstream: Downstream,
    template: String,
    required: bool,
}

struct Aggregate {
    parts: Vec<Part>,
    merge: MergeMode,
    scopes: Vec<String>,
}

impl Aggregate {
    async fn handle(
        &self,
        ctx: RequestContext,
        params: HashMap<String, String>,
    ) -> Result<Response, BffError> {
        if !self.scopes.is_empty() {
            let scopes: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
            ctx.require_scopes(&scopes)?;
        }
        let calls = self.parts.iter().map(|part| {
            let ctx = &ctx;
            let params = &params;
            async move {
                let path = fill_path(&part.template, params)?;
                let call = part.downstream.get_bytes(ctx, &path, &[]);
                if part.required {
                    ctx.required(part.name, call).await.map(Some)
                } else {
                    ctx.optional(part.name, call).await
                }
            }
        });
        let bodies = futures::future::try_join_all(calls).await?;
        let merged = match self.merge {
            MergeMode::Nest => self.nest(&ctx, &bodies)?,
            MergeMode::Flatten => self.flatten(&ctx, &bodies)?,
        };
        let mut response = merged.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(response)
    }

    /// The body of `part` as raw JSON, or the part's failure (required) / `None` (optional, marked partial).
    fn raw<'a>(
        ctx: &RequestContext,
        part: &Part,
        body: Option<&'a Bytes>,
    ) -> Result<Option<&'a RawValue>, BffError> {
        let Some(body) = body else { return Ok(None) };
        match serde_json::from_slice::<&RawValue>(body) {
            Ok(raw) => Ok(Some(raw)),
            Err(e) => Self::malformed(ctx, part, &e),
        }
    }

    fn malformed<T>(
        ctx: &RequestContext,
        part: &Part,
        e: &serde_json::Error,
    ) -> Result<Option<T>, BffError> {
        tracing::warn!(part = part.name, downstream = %part.downstream.name(), error = %e, "malformed JSON");
        if part.required {
            Err(BffError::BadGateway { part: part.name })
        } else {
            ctx.mark_partial(part.name);
            Ok(None)
        }
    }

    fn nest(&self, ctx: &RequestContext, bodies: &[Option<Bytes>]) -> Result<Vec<u8>, BffError> {
        let mut out =
            Vec::with_capacity(bodies.iter().flatten().map(Bytes::len).sum::<usize>() + 64);
        out.push(b'{');
        for (i, (part, body)) in self.parts.iter().zip(bodies).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, part.name).map_err(|_| BffError::Internal)?;
            out.push(b':');
            match Self::raw(ctx, part, body.as_ref())? {
                Some(raw) => out.extend_from_slice(raw.get().as_bytes()),
                None => out.extend_from_slice(b"null"),
            }
        }
        out.push(b'}');
        Ok(out)
    }

    fn flatten(&self, ctx: &RequestContext, bodies: &[Option<Bytes>]) -> Result<Vec<u8>, BffError> {
        let mut merged: BTreeMap<String, &RawValue> = BTreeMap::new();
        for (part, body) in self.parts.iter().zip(bodies) {
            let Some(body) = body else { continue };
            match serde_json::from_slice::<BTreeMap<String, &RawValue>>(body) {
                Ok(fields) => merged.extend(fields),
                Err(e) => {
                    Self::malformed::<()>(ctx, part, &e)?;
                }
            }
        }
        serde_json::to_vec(&merged).map_err(|_| BffError::Internal)
    }
}

/// A router serving every declarative aggregation.
pub(crate) fn router(
    aggregates: &[AggregateConfig],
    downstream: impl Fn(&str) -> Option<Downstream>,
) -> Router {
    let mut router = Router::new();
    for config in aggregates {
        let parts = config
            .parts
            .iter()
            .filter_map(|p| {
                Some(Part {
                    name: Box::leak(p.name.clone().into_boxed_str()),
                    downstream: downstream(&p.downstream)?,
                    template: p.path.clone(),
                    required: p.required,
                })
            })
            .collect();
        let aggregate = Arc::new(Aggregate {
            parts,
            merge: config.merge,
            scopes: config.scopes.clone(),
        });
        router = router.route(
            &config.path,
            get(
                move |ctx: RequestContext, params: Option<Path<HashMap<String, String>>>| async move {
                    let params = params.map(|Path(p)| p).unwrap_or_default();
                    aggregate.handle(ctx, params).await
                },
            ),
        );
    }
    router
}
