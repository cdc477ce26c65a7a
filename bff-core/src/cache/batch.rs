//! Cross-request batching (the DataLoader pattern): item lookups by id from concurrent requests that arrive
//! within a short window (`batch_window_ms`, 1 ms by default) are merged into one batch call
//! (`GET {prefix}id1,id2,...`), and the answer is split back by item id. Items are cached one by one (the
//! batch answer's freshness), so the next lookup of a known id makes no call at all.
//!
//! Only downstreams configured `shared = true` (answers the same for every caller) batch across requests:
//! for the others a lookup is one plain batch call of the request's own ids.
//!
//! ```no_run
//! # use std::collections::HashMap;
//! # use bff_core::{cache::BatchSpec, context::RequestContext, downstream::{Downstream, DownstreamError}};
//! # async fn enrich(ctx: RequestContext, catalog: Downstream, ids: Vec<String>) -> Result<(), DownstreamError> {
//! // Built once, in the gateway's state:
//! let products = catalog.batcher(BatchSpec { prefix: "/products?ids=", items_field: "items", id_field: "id", max_ids: 100 });
//! // Per request:
//! let by_id: HashMap<String, serde_json::Value> = products.load(&ctx, &ids).await?;
//! # Ok(()) }
//! ```
//! The merged call carries the identity headers and trace context of the request that opened the window and
//! the latest deadline of the requests in it; a window whose requests all went away makes no call.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared, WeakShared};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::directives::CachePolicy;
use super::{Keys, Lookup, mark_stale, serves_stale};
use crate::context::RequestContext;
use crate::downstream::{Downstream, DownstreamError, DownstreamErrorKind, encode_query};

/// How a downstream's batch endpoint looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpec {
    /// Path and query prefix the comma-separated (query-encoded) ids are appended to, e.g.
    /// `/products?ids=`.
    pub prefix: &'static str,
    /// Field of the answer object holding the array of items, e.g. `items`.
    pub items_field: &'static str,
    /// Field of each item holding its id (a string or a number), e.g. `id`.
    pub id_field: &'static str,
    /// Most ids in one call.
    pub max_ids: usize,
}

/// Merges item lookups of concurrent requests into batch calls. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Batcher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    downstream: Downstream,
    spec: BatchSpec,
    window: Duration,
    /// The window open for joining, if any.
    open: Mutex<Option<OpenWindow>>,
}

type BatchResult = Result<Arc<BatchAnswer>, DownstreamError>;
type BatchFuture = BoxFuture<'static, BatchResult>;

#[derive(Debug)]
struct OpenWindow {
    state: Arc<Mutex<WindowState>>,
    /// Wakes the flush early when the window is full.
    full: Arc<Notify>,
    /// The flush (weak: when every request in the window went away, no call is made).
    flush: WeakShared<BatchFuture>,
}

#[derive(Debug)]
struct WindowState {
    ids: Vec<String>,
    seen: HashSet<String>,
    /// The request that opened the window (identity and trace of the merged call).
    ctx: RequestContext,
    /// The opener's trace recording, its part as the parent of the merged call's attempts.
    spans: Option<crate::otel::RequestSpans>,
    /// The latest deadline of the requests in the window.
    deadline: Instant,
    /// Set when the flush took the ids: nobody may join any more.
    closed: bool,
}

/// A split batch answer.
#[derive(Debug)]
struct BatchAnswer {
    items: HashMap<String, Bytes>,
    policy: CachePolicy,
    private: bool,
    scope: String,
}

impl Downstream {
    /// A batcher of this downstream's batch endpoint `spec`, with the downstream's `batch_window_ms`.
    pub fn batcher(&self, spec: BatchSpec) -> Batcher {
        let window = Duration::from_millis(self.cache().config.batch_window_ms);
        Batcher {
            inner: Arc::new(Inner {
                downstream: self.clone(),
                spec: BatchSpec {
                    max_ids: spec.max_ids.max(1),
                    ..spec
                },
                window,
                open: Mutex::new(None),
            }),
        }
    }
}

impl Batcher {
    /// The items with `ids` (duplicates ignored), by id; unknown ids are absent. Fresh cached items make no
    /// call; the others join the open window (or open one) and are fetched with the ids of concurrent
    /// requests. When the call fails and every missing id has a stale item within `stale_if_error_s`, those
    /// are served (marked `part=stale`).
    pub async fn load<T: DeserializeOwned>(
        &self,
        ctx: &RequestContext,
        ids: &[String],
    ) -> Result<HashMap<String, T>, DownstreamError> {
        let inner = &*self.inner;
        let cache = inner.downstream.cache().clone();
        let ids = crate::compose::unique_ids(ids.iter().map(String::as_str));
        let mut found: HashMap<String, Bytes> = HashMap::new();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        if !cache.config.shared {
            let answer = self.call(ctx, &ids).await?;
            ctx.record_cache(answer.policy);
            return Ok(decode_all(&inner.downstream, answer.items.clone()));
        }
        let mut missing = Vec::new();
        let mut stale: HashMap<String, Bytes> = HashMap::new();
        for id in &ids {
            // Layer 1's lookup, item by item (fresh items answer; stale ones are kept for a failed call).
            match cache.lookup(ctx, &Keys::item(self.item_key(id))).await {
                Lookup::Hit(body) => {
                    found.insert(id.clone(), body);
                }
                Lookup::Revalidate(kept) | Lookup::Miss(Some(kept)) => {
                    cache.counters.misses.inc();
                    stale.insert(id.clone(), kept.entry.body.clone());
                    missing.push(id.clone());
                }
                Lookup::Miss(None) => {
                    cache.counters.misses.inc();
                    missing.push(id.clone());
                }
            }
        }
        if missing.is_empty() {
            return Ok(decode_all(&inner.downstream, found));
        }
        cache.counters.batch_lookups.inc();
        let scope = ctx.identity_headers().scope();
        let chunks = missing.chunks(inner.spec.max_ids).map(|chunk| async move {
            let answer = self.join(ctx, chunk).await;
            let answer = match answer {
                // A private answer fetched with someone else's identity is not ours: call for ourselves.
                Ok(a) if a.private && a.scope != *scope => self.call(ctx, chunk).await,
                Err(e)
                    if e.kind == DownstreamErrorKind::Deadline
                        && Instant::now() < ctx.deadline() =>
                {
                    self.call(ctx, chunk).await
                }
                other => other,
            };
            (chunk, answer)
        });
        for (chunk, answer) in futures::future::join_all(chunks).await {
            match answer {
                Ok(answer) => {
                    ctx.record_cache(answer.policy);
                    for id in chunk {
                        if let Some(item) = answer.items.get(id) {
                            found.insert(id.clone(), item.clone());
                        }
                    }
                }
                Err(e) if serves_stale(e.kind) && chunk.iter().all(|id| stale.contains_key(id)) => {
                    tracing::warn!(error = %e, "batch call failed; stale items served");
                    cache.counters.stale_if_error.inc();
                    mark_stale(ctx, false);
                    for id in chunk {
                        if let Some(item) = stale.remove(id) {
                            found.insert(id.clone(), item);
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(decode_all(&inner.downstream, found))
    }

    /// The cache key of one item.
    fn item_key(&self, id: &str) -> String {
        let name = self.inner.downstream.name();
        format!("{name}\u{1e}*\u{1e}item:{}{id}", self.inner.spec.prefix)
    }

    /// Joins the open window with `ids` (at most `max_ids`), or opens one, and waits for its answer.
    async fn join(&self, ctx: &RequestContext, ids: &[String]) -> BatchResult {
        let inner = &self.inner;
        if inner.window.is_zero() {
            return self.call(ctx, ids).await;
        }
        let flush = {
            let mut open = inner.open.lock().unwrap_or_else(|e| e.into_inner());
            let joined = open.as_ref().and_then(|w| {
                let flush = w.flush.upgrade()?;
                let mut state = w.state.lock().unwrap_or_else(|e| e.into_inner());
                let new = ids.iter().filter(|id| !state.seen.contains(*id)).count();
                if state.closed || state.ids.len() + new > inner.spec.max_ids {
                    // Full: let it go now; a new window opens below.
                    w.full.notify_one();
                    return None;
                }
                for id in ids {
                    if state.seen.insert(id.clone()) {
                        state.ids.push(id.clone());
                    }
                }
                state.deadline = state.deadline.max(ctx.deadline());
                if state.ids.len() >= inner.spec.max_ids {
                    w.full.notify_one();
                }
                Some(flush)
            });
            match joined {
                Some(flush) => flush,
                None => {
                    let state = Arc::new(Mutex::new(WindowState {
                        ids: ids.to_vec(),
                        seen: ids.iter().cloned().collect(),
                        ctx: ctx.clone(),
                        spans: ctx.spans().map(crate::otel::RequestSpans::for_current_part),
                        deadline: ctx.deadline(),
                        closed: false,
                    }));
                    let full = Arc::new(Notify::new());
                    if ids.len() >= inner.spec.max_ids {
                        full.notify_one();
                    }
                    let flush: Shared<BatchFuture> = self
                        .clone()
                        .flush(state.clone(), full.clone())
                        .boxed()
                        .shared();
                    if let Some(weak) = flush.downgrade() {
                        *open = Some(OpenWindow {
                            state,
                            full,
                            flush: weak,
                        });
                    }
                    flush
                }
            }
        };
        flush.await
    }

    /// Waits for the window (or until it is full), closes it and makes the one call.
    async fn flush(self, state: Arc<Mutex<WindowState>>, full: Arc<Notify>) -> BatchResult {
        tokio::select! {
            () = tokio::time::sleep(self.inner.window) => {}
            () = full.notified() => {}
        }
        let (ids, ctx) = {
            let mut open = self.inner.open.lock().unwrap_or_else(|e| e.into_inner());
            if open.as_ref().is_some_and(|w| Arc::ptr_eq(&w.state, &state)) {
                *open = None;
            }
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            s.closed = true;
            let ctx = s.ctx.detached(s.deadline).with_spans(s.spans.clone());
            (std::mem::take(&mut s.ids), ctx)
        };
        self.call(&ctx, &ids).await
    }

    /// One batch call for `ids`; the items are stored one by one (shared downstreams) and split by id.
    async fn call(&self, ctx: &RequestContext, ids: &[String]) -> BatchResult {
        let inner = &*self.inner;
        let downstream = &inner.downstream;
        let cache = downstream.cache();
        cache.counters.batch_calls.inc();
        let list: Vec<String> = ids.iter().map(|id| encode_query(id)).collect();
        let path = format!("{}{}", inner.spec.prefix, list.join(","));
        let answer = downstream.get_uncached(ctx, &path).await?;
        let c = &cache.config;
        let scope = ctx.identity_headers().scope().to_owned();
        let w = cache.freshness_of(&answer, &path, !c.shared && !scope.is_empty());
        let items = split(&answer.body, inner.spec).ok_or_else(|| {
            tracing::warn!(downstream = %downstream.name(), "batch answer without the expected items");
            DownstreamError::new(downstream.name(), DownstreamErrorKind::Decode)
        })?;
        // Items are stored one by one, only for a shared downstream and a non-private answer; otherwise by
        // the cache's one storing rule (no background revalidation of items).
        if c.shared && !w.private {
            for (id, body) in &items {
                if let Some(entry) = cache.entry(body.clone(), &w, false) {
                    cache.store.put(self.item_key(id), Arc::new(entry)).await;
                }
            }
        }
        Ok(Arc::new(BatchAnswer {
            items,
            policy: CachePolicy::part(w.fresh_for, w.per_caller, w.no_store),
            private: w.private,
            scope,
        }))
    }
}

/// The items of a batch answer by id, each as its own JSON bytes.
fn split(body: &[u8], spec: BatchSpec) -> Option<HashMap<String, Bytes>> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let items = value.get(spec.items_field)?.as_array()?;
    let mut out = HashMap::with_capacity(items.len());
    for item in items {
        let id = match item.get(spec.id_field)? {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => return None,
        };
        out.insert(id, Bytes::from(serde_json::to_vec(item).ok()?));
    }
    Some(out)
}

/// Decodes every item; one that does not decode as `T` is left out (and logged).
fn decode_all<T: DeserializeOwned>(
    downstream: &Downstream,
    items: HashMap<String, Bytes>,
) -> HashMap<String, T> {
    items
        .into_iter()
        .filter_map(|(id, body)| match serde_json::from_slice(&body) {
            Ok(item) => Some((id, item)),
            Err(e) => {
                tracing::warn!(downstream = %downstream.name(), error = %e, "batch item not decodable; left out");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Items are split by string or numeric id; a missing items field or id is no answer.
    #[test]
    fn splits_items_by_id() {
        let spec = BatchSpec {
            prefix: "/p?ids=",
            items_field: "items",
            id_field: "id",
            max_ids: 10,
        };
        let items = split(
            br#"{"items":[{"id":"1","n":"a"},{"id":2}],"missing":["3"]}"#,
            spec,
        )
        .unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(&items["1"][..], br#"{"id":"1","n":"a"}"#);
        assert!(items.contains_key("2"));
        assert!(split(br#"{"rows":[]}"#, spec).is_none());
        assert!(split(br#"{"items":[{"x":1}]}"#, spec).is_none());
        assert!(split(b"not json", spec).is_none());
    }
}
