//! Declarative aggregation from config (the KrakenD-style endpoint, no Rust needed): `GET path` calls every
//! part under the request deadline and merges the JSON answers, either nested under the part names or
//! flattened into one object. Parts run in parallel, except that a part reading an earlier one
//! (`{profile.id}`, `for_each = "orders.items.product_id"`) starts as soon as that one has answered; a part
//! may also use the verified caller (`{caller.user_id}`), which makes the aggregation refuse anonymous
//! callers. Merging works on the top level only: part bodies are validated once, when they arrive, which
//! also finds their top-level members; they are merged by that text ([`members`]), and only parsed further
//! when a later part reads them. A part may have
//! a fallback (a static default, or its last good answer within an age), served and named in `bff-degraded`
//! when its call fails.

pub(crate) mod config;
mod members;
mod template;
mod valid;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::response::Response;
use axum::routing::get;
use bytes::Bytes;
use serde_json::value::RawValue;

use self::config::{AggregateConfig, MergeMode};
use self::template::{Caller, FieldRef, Inputs, PartTemplate};
use self::valid::MemberSpan;
use crate::context::RequestContext;
use crate::downstream::{Downstream, DownstreamError, DownstreamErrorKind};
use crate::error::BffError;
use crate::resilience::{Fallback, LastGood};

struct Part {
    /// Leaked once at start-up: part names are `'static` labels in errors and `bff-partial`.
    name: &'static str,
    downstream: Downstream,
    template: PartTemplate,
    /// The `for_each` source and its bound.
    for_each: Option<(FieldRef, usize)>,
    /// The earlier parts this one reads (it starts when they have answered).
    reads: Vec<usize>,
    /// Whether a later part reads this one (its answer is then parsed once and shared).
    read_later: bool,
    required: bool,
    /// The static default (serialised and checked once).
    fallback: Option<Answer>,
    /// Last good answers, by caller and path, when `stale_max_age_s` is set.
    last_good: Option<LastGood<Answer>>,
}

/// A part's answer as the merge takes it: one JSON text, with the members of its top-level object as its
/// validation found them (`None`: not an object).
#[derive(Debug, Clone)]
struct Answer {
    body: Bytes,
    members: Option<Vec<MemberSpan>>,
}

impl Answer {
    /// `body` when it is one JSON text.
    fn checked(body: Bytes) -> Option<Self> {
        let members = valid::check(&body)?;
        Some(Self { body, members })
    }

    /// The answer of a part fanned out over no values: an empty list.
    fn empty_list() -> Self {
        Self {
            body: Bytes::from_static(b"[]"),
            members: None,
        }
    }
}

/// Most last good answers kept per part (the oldest caller/path is forgotten first).
const LAST_GOOD_CAPACITY: usize = 1_024;

impl Part {
    /// The fallback of this part for the caller of `ctx` at `path`.
    fn fallback(&self, ctx: &RequestContext, path: &str) -> Fallback<Answer> {
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
    /// Some part uses `{caller.user_id}`: only users may call.
    needs_user: bool,
    /// Some part uses `{caller.partner_id}`: only partners may call.
    needs_partner: bool,
}

/// The answer of a part as later parts see it: `None` until it has answered, then its parsed body (or
/// `None` when it failed or its body is not JSON).
type Shared = tokio::sync::watch::Sender<Option<Option<Arc<serde_json::Value>>>>;

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
        let caller = self.caller(&ctx)?;
        // A channel only for the parts a later part reads: most aggregations have none, and each channel is
        // an allocation and a wake-up of its waiters list per request.
        let answers: Vec<Option<Shared>> = (self.parts.iter())
            .map(|part| {
                part.read_later
                    .then(|| tokio::sync::watch::Sender::new(None))
            })
            .collect();
        let calls = self.parts.iter().enumerate().map(|(i, part)| {
            let (ctx, params, answers) = (&ctx, &params, &answers);
            async move {
                // Wait for the parts this one reads (each bounded by the same deadline).
                let mut read: Vec<Option<Arc<serde_json::Value>>> = Vec::new();
                if !part.reads.is_empty() {
                    read.resize(i, None);
                }
                for &dep in &part.reads {
                    // Every part read by a later one has its channel (see `build`).
                    let Some(mut rx) = answers[dep].as_ref().map(Shared::subscribe) else {
                        continue;
                    };
                    read[dep] = rx
                        .wait_for(Option::is_some)
                        .await
                        .ok()
                        .and_then(|answer| answer.clone().flatten());
                }
                let inputs = Inputs {
                    params,
                    caller,
                    parts: &read,
                    each: None,
                };
                let body = self.call(ctx, part, inputs).await;
                if let Some(answer) = &answers[i] {
                    let parsed = match &body {
                        Ok(Some(answer)) => serde_json::from_slice(&answer.body).ok().map(Arc::new),
                        _ => None,
                    };
                    answer.send_replace(Some(parsed));
                }
                body
            }
        });
        let answers = futures::future::try_join_all(calls).await?;
        let merged = match self.merge {
            MergeMode::Nest => self.nest(&answers)?,
            MergeMode::Flatten => self.flatten(&ctx, &answers)?,
        };
        Ok(crate::routes::json_response(merged.into()))
    }

    /// The caller's ids the parts use, or 401 (anonymous) / 403 (a user where a partner is needed, or the
    /// reverse) when the aggregation cannot be served to this caller.
    fn caller<'a>(&self, ctx: &'a RequestContext) -> Result<Caller<'a>, BffError> {
        if !(self.needs_user || self.needs_partner) {
            return Ok(Caller::default());
        }
        let identity = ctx.require_identity()?;
        let caller = Caller {
            user_id: identity
                .partner
                .is_none()
                .then_some(identity.subject.as_str()),
            partner_id: identity.partner.as_ref().map(|p| p.id.as_str()),
        };
        if (self.needs_user && caller.user_id.is_none())
            || (self.needs_partner && caller.partner_id.is_none())
        {
            return Err(BffError::Forbidden);
        }
        Ok(caller)
    }

    /// Calls one part (or fails it when its path cannot be built from what it reads) with its
    /// required/optional and fallback semantics.
    async fn call(
        &self,
        ctx: &RequestContext,
        part: &Part,
        mut inputs: Inputs<'_>,
    ) -> Result<Option<Answer>, BffError> {
        let each = match &part.for_each {
            Some((source, max)) => {
                let found = inputs.parts[source.part]
                    .as_deref()
                    .map(|value| source.each(value, *max));
                match found {
                    Some(Some(values)) => Some(Ok(values)),
                    Some(None) => Some(Err("`for_each` found a non-scalar or too many values")),
                    None => Some(Err("the part it reads failed")),
                }
            }
            None => None,
        };
        let each = match each {
            Some(Ok(values)) => Some(values),
            Some(Err(reason)) => return self.fail(ctx, part, reason).await,
            None => None,
        };
        // Nothing to fan out over: the part is an empty list, without a call.
        if each.as_ref().is_some_and(Vec::is_empty) {
            return Ok(Some(Answer::empty_list()));
        }
        inputs.each = each.as_deref();
        let path = match part.template.render(&inputs) {
            Ok(path) => path,
            Err(reason) => return self.fail(ctx, part, reason).await,
        };
        let fallback = part.fallback(ctx, &path);
        // Only valid JSON counts as a good answer (and may become a last good value).
        let call = async {
            let body = part.downstream.get_bytes(ctx, &path, &[]).await?;
            if let Some(members) = valid::check(&body) {
                return Ok(Answer { body, members });
            }
            // serde_json names what is wrong, for the log.
            match serde_json::from_slice::<&RawValue>(&body) {
                Err(e) => tracing::warn!(part = part.name, error = %e, "malformed JSON"),
                // Never: the two agree (see `valid`'s tests); the body is refused all the same.
                Ok(_) => tracing::error!(part = part.name, "JSON refused by the validator only"),
            }
            Err(DownstreamError::new(
                part.downstream.name(),
                DownstreamErrorKind::Decode,
            ))
        };
        if part.required {
            ctx.required_or(part.name, call, fallback).await.map(Some)
        } else {
            ctx.optional_or(part.name, call, fallback).await
        }
    }

    /// A part whose path cannot be built: failed like a call answering unusable data (502 when required,
    /// partial when optional), its static default still served if it has one.
    async fn fail(
        &self,
        ctx: &RequestContext,
        part: &Part,
        reason: &'static str,
    ) -> Result<Option<Answer>, BffError> {
        tracing::info!(part = part.name, reason, "part not called");
        let fallback = match &part.fallback {
            Some(value) => Fallback::none().or_value(value.clone()),
            None => Fallback::none(),
        };
        let failed = async {
            Err(DownstreamError::new(
                part.downstream.name(),
                DownstreamErrorKind::Decode,
            ))
        };
        if part.required {
            ctx.required_or(part.name, failed, fallback).await.map(Some)
        } else {
            ctx.optional_or(part.name, failed, fallback).await
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

    fn nest(&self, answers: &[Option<Answer>]) -> Result<Vec<u8>, BffError> {
        let mut out = Vec::with_capacity(capacity(answers) + 64);
        out.push(b'{');
        for (i, (part, answer)) in self.parts.iter().zip(answers).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, part.name).map_err(|_| BffError::Internal)?;
            out.push(b':');
            match answer {
                // Validated when it arrived: its text goes in as it is.
                Some(answer) => out.extend_from_slice(validated(&answer.body)),
                None => out.extend_from_slice(b"null"),
            }
        }
        out.push(b'}');
        Ok(out)
    }

    fn flatten(
        &self,
        ctx: &RequestContext,
        answers: &[Option<Answer>],
    ) -> Result<Vec<u8>, BffError> {
        // Every member of every part, keys decoded (one spelling per key), values as written.
        let count = answers.iter().flatten().filter_map(|a| a.members.as_ref());
        let mut merged: Vec<(Cow<'_, str>, Member<'_>)> =
            Vec::with_capacity(count.map(Vec::len).sum());
        for (part, answer) in self.parts.iter().zip(answers) {
            let Some(answer) = answer else { continue };
            if answer.members.is_some() {
                answer.push_members(&mut merged)?;
                continue;
            }
            // Not an object: serde_json names what it is instead.
            match serde_json::from_slice::<BTreeMap<String, &RawValue>>(&answer.body) {
                Ok(fields) => merged.extend(fields.into_iter().map(|(k, v)| {
                    let value = v.get().as_bytes();
                    let member = Member {
                        spelled: None,
                        value,
                    };
                    (Cow::Owned(k), member)
                })),
                Err(e) => {
                    Self::malformed::<()>(ctx, part, &e)?;
                }
            }
        }
        write_flat(merged, capacity(answers) + 2)
    }
}

impl Answer {
    /// Appends the members of this answer's top-level object (none when it is not an object).
    fn push_members<'a>(
        &'a self,
        merged: &mut Vec<(Cow<'a, str>, Member<'a>)>,
    ) -> Result<(), BffError> {
        for MemberSpan { key, value } in self.members.iter().flatten() {
            let written = self.body.get(key.clone()).ok_or(BffError::Internal)?;
            let (name, spelled) = members::key(written).ok_or(BffError::Internal)?;
            let value = self.body.get(value.clone()).ok_or(BffError::Internal)?;
            merged.push((name, Member { spelled, value }));
        }
        Ok(())
    }
}

/// The object of the `merged` members (in arrival order), keys in order; of the members with one key, the
/// last one wins (a later part's over an earlier one's, and within a part the last as with a map): a stable
/// sort keeps them in arrival order, and the last of each run takes the kept place.
fn write_flat(
    mut merged: Vec<(Cow<'_, str>, Member<'_>)>,
    capacity: usize,
) -> Result<Vec<u8>, BffError> {
    merged.sort_by(|a, b| a.0.cmp(&b.0));
    merged.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            std::mem::swap(later, kept);
        }
        same
    });
    let mut out = Vec::with_capacity(capacity);
    out.push(b'{');
    for (i, (key, member)) in merged.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match member.spelled {
            Some(spelled) => out.extend_from_slice(spelled),
            None => serde_json::to_writer(&mut out, key).map_err(|_| BffError::Internal)?,
        }
        out.push(b':');
        out.extend_from_slice(member.value);
    }
    out.push(b'}');
    Ok(out)
}

/// The length of all the answers' bodies (what a merge's output is sized for).
fn capacity(answers: &[Option<Answer>]) -> usize {
    answers.iter().flatten().map(|a| a.body.len()).sum()
}

/// A member of a flattened answer: its value as written, and its key as written when that is how
/// serde_json would write it again.
struct Member<'a> {
    spelled: Option<&'a [u8]>,
    value: &'a [u8],
}

/// The text of a part's body, which was validated as JSON when it arrived (checked again in debug builds).
fn validated(body: &[u8]) -> &[u8] {
    debug_assert!(
        serde_json::from_slice::<&RawValue>(body).is_ok(),
        "an aggregated body was not validated"
    );
    members::value(body)
}

/// A router serving every declarative aggregation.
pub(crate) fn router(
    aggregates: &[AggregateConfig],
    downstream: impl Fn(&str) -> Option<Downstream>,
) -> Router {
    let mut router = Router::new();
    for config in aggregates {
        let Some(aggregate) = build(config, &downstream) else {
            // Validation rules this out; never serve half an aggregation.
            tracing::error!(path = %config.path, "aggregation not served: invalid parts");
            continue;
        };
        let aggregate = Arc::new(aggregate);
        router = router.route(
            &config.path,
            get(
                move |ctx: RequestContext, params: Option<Path<HashMap<String, String>>>| async move {
                    let params = params.map(|Path(p)| p).unwrap_or_default();
                    aggregate.handle(ctx, params).await
                },
            )
            // A screen like the gateway's own: a client may ask for it as a stream of its parts.
            .route_layer(crate::api::guard::GuardLayer::screen()),
        );
    }
    router
}

/// The aggregation of `config`, or `None` when a part's downstream is unknown or its path does not parse.
fn build(
    config: &AggregateConfig,
    downstream: &impl Fn(&str) -> Option<Downstream>,
) -> Option<Aggregate> {
    let mut parts: Vec<Part> = Vec::with_capacity(config.parts.len());
    for (j, p) in config.parts.iter().enumerate() {
        let earlier = &config.parts[..j];
        let template = PartTemplate::parse(&p.path, &config.path, earlier).ok()?;
        let for_each = match &p.for_each {
            Some(source) => Some((FieldRef::parse(source, earlier).ok()?, p.for_each_max)),
            None => None,
        };
        let mut reads: Vec<usize> = template.reads().collect();
        reads.extend(for_each.as_ref().map(|(f, _)| f.part));
        reads.sort_unstable();
        reads.dedup();
        for &dep in &reads {
            parts[dep].read_later = true;
        }
        parts.push(Part {
            name: Box::leak(p.name.clone().into_boxed_str()),
            downstream: downstream(&p.downstream)?,
            template,
            for_each,
            reads,
            read_later: false,
            required: p.required,
            fallback: p
                .fallback
                .as_ref()
                .and_then(|v| serde_json::to_vec(v).ok())
                .and_then(|v| Answer::checked(v.into())),
            last_good: (p.stale_max_age_s > 0).then(|| {
                LastGood::new(
                    std::time::Duration::from_secs(p.stale_max_age_s),
                    LAST_GOOD_CAPACITY,
                )
            }),
        });
    }
    Some(Aggregate {
        needs_user: parts.iter().any(|p| p.template.uses_caller_user()),
        needs_partner: parts.iter().any(|p| p.template.uses_caller_partner()),
        parts,
        merge: config.merge,
        scopes: config.scopes.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flattened object of `docs` (each one part's answer, in part order).
    fn flat(docs: &[&str]) -> String {
        let answers: Vec<Answer> = (docs.iter())
            .map(|d| Answer::checked(Bytes::copy_from_slice(d.as_bytes())).unwrap())
            .collect();
        let mut merged = Vec::new();
        for answer in &answers {
            answer.push_members(&mut merged).unwrap();
        }
        String::from_utf8(write_flat(merged, 0).unwrap()).unwrap()
    }

    /// Keys come out in order, values as written; a later part's key wins over an earlier one's, the last
    /// duplicate within a part wins, and a key spelled with an escape is written as serde_json writes it.
    #[test]
    fn flatten_orders_keys_and_later_parts_win() {
        assert_eq!(
            flat(&[
                r#"{"b": [1, 2], "a":"x", "c":0}"#,
                r#" {"a":2,"\u0062":{"k":true}} "#,
                r#"{"d":1,"a":3,"d":2}"#,
                "{}",
            ]),
            r#"{"a":3,"b":{"k":true},"c":0,"d":2}"#
        );
        assert_eq!(flat(&[r#"{"a\"b":1}"#, "{}"]), r#"{"a\"b":1}"#);
        assert_eq!(flat(&["{}", "{}"]), "{}");
        // Many keys, each written by every part: the last part's values, all keys once.
        let docs: Vec<String> = (0..3)
            .map(|p| {
                let members: Vec<String> = (0..40).map(|k| format!(r#""k{k:02}":{p}"#)).collect();
                format!("{{{}}}", members.join(","))
            })
            .collect();
        let docs: Vec<&str> = docs.iter().map(String::as_str).collect();
        let expected: Vec<String> = (0..40).map(|k| format!(r#""k{k:02}":2"#)).collect();
        assert_eq!(flat(&docs), format!("{{{}}}", expected.join(",")));
    }
}
