//! Declarative aggregation from config (the KrakenD-style endpoint, no Rust needed): `GET path` calls every
//! part in parallel under the request deadline and merges the JSON answers, either nested under the part
//! names or flattened into one object. Merging works on the top level only (`RawValue`): part bodies are
//! validated but never fully parsed and re-serialised. A part may have a fallback (a static default, or its
//! last good answer within an age), served and named in `bff-degraded` when its call fails.

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
use crate::downstream::{Downstream, DownstreamError, DownstreamErrorKind};
use crate::error::BffError;
use crate::resilience::{Fallback, LastGood};
use crate::routes::fill_path;

struct Part {
    /// Leaked once at start-up: part names are `'static` labels in errors and `bff-partial`.
    name: &'static str,
    downstream: Downstream,
    template: String,
    required: bool,
    /// The static default (serialised once).
    fallback: Option<Bytes>,
    /// Last good answers, by caller and path, when `stale_max_age_s` is set.
    last_good: Option<LastGood<Bytes>>,
}

/// Most last good answers kept per part (the oldest caller/path is forgotten first).
const LAST_GOOD_CAPACITY: usize = 1_024;

impl Part {
    /// The fallback of this part for the caller of `ctx` at `path`.
    fn fallback(&self, ctx: &RequestContext, path: &str) -> Fallback<Bytes> {
        let mut fallback = match &self.last_good {
            Some(store) => {
                // The caller is part of the key: one caller's answer is never served to another.
                let caller = ctx
                    .identity()
                    .map(|i| format!("{}:{}", i.client, i.subject))
                    .unwrap_or_default();
                Fallback::stale(store, format!("{caller}|{path}"))
            }
            None => Fallback::none(),
        };
        if let Some(value) = &self.fallback {
            fallback = fallback.or_value(value.clone());
        }
        fallback
    }
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
                let fallback = part.fallback(ctx, &path);
                // Only valid JSON counts as a good answer (and may become a last good value).
                let call = async {
                    let body = part.downstream.get_bytes(ctx, &path, &[]).await?;
                    match serde_json::from_slice::<&RawValue>(&body) {
                        Ok(_) => Ok(body),
                        Err(e) => {
                            tracing::warn!(part = part.name, error = %e, "malformed JSON");
                            Err(DownstreamError::new(
                                part.downstream.name(),
                                DownstreamErrorKind::Decode,
                            ))
                        }
                    }
                };
                if part.required {
                    ctx.required_or(part.name, call, fallback).await.map(Some)
                } else {
                    ctx.optional_or(part.name, call, fallback).await
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
                    fallback: p
                        .fallback
                        .as_ref()
                        .and_then(|v| serde_json::to_vec(v).ok())
                        .map(Bytes::from),
                    last_good: (p.stale_max_age_s > 0).then(|| {
                        LastGood::new(
                            std::time::Duration::from_secs(p.stale_max_age_s),
                            LAST_GOOD_CAPACITY,
                        )
                    }),
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
