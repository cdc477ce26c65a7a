//! Caching and bandwidth: the downstream response cache with request coalescing and stale serving, the
//! cross-request batcher, and what the client sees (merged `Cache-Control`, `Vary`, compression). The rules
//! and every default are told in `docs/caching.md`.
//!
//! The downstream call stack (`downstream/stack.rs`) runs every read through the first two layers, the
//! steps of its [`DownstreamCache`]:
//! 1. **lookup** under the caller's key — for a `shared` downstream the shared key first, then the caller's
//!    own key (where `private` answers live); a fresh entry is a hit; an entry within
//!    `stale_while_revalidate_s` is served and refreshed by one background call; an entry only within
//!    `stale_if_error_s` is kept aside;
//! 2. **coalesced fetch** — one call per key in flight: concurrent identical misses wait for it
//!    (a waiter of another identity that gets a `private` answer calls for itself);
//! 3. **store** — 2xx only (errors are never stored), unless `no-store`; freshness from `s-maxage` /
//!    `max-age`, else the configured TTL, capped by `max_ttl_s`; `no-cache` is never served fresh;
//! 4. **stale-if-error** — a failed call (not a 404 or other 4xx) is answered with the kept stale entry,
//!    named `part=stale` in `bff-degraded`;
//! 5. **client policy** — each answer records its [`CachePolicy`] on the request context; the edge merges
//!    them (strictest wins) into the response's `Cache-Control`.
//!
//! # Layout
//! - [`config`]: `[cache]` and `[downstreams.<name>.cache]`;
//! - [`directives`]: `Cache-Control` parsing and the client-facing [`CachePolicy`];
//! - [`store`]: the moka store bounded by bytes, entries and their freshness windows;
//! - `redis`: the optional second level shared by instances;
//! - [`batch`]: the DataLoader-style [`Batcher`] (item lookups of concurrent requests in one call);
//! - [`client`]: the edge's steps: computed `Cache-Control` and `Vary`, compression.

pub mod batch;
pub mod client;
mod compress;
pub mod config;
pub mod directives;
mod redis;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared, WeakShared};

pub use batch::{BatchSpec, Batcher};
pub use config::{CacheConfig, DownstreamCacheConfig};
pub use directives::CachePolicy;
pub use store::Store;

use crate::context::{RequestContext, current_part};
use crate::downstream::{Answer, DownstreamError, DownstreamErrorKind};
use crate::metrics::{Counter, Metrics};
use directives::Directives;
use store::{Entry, Freshness};

/// What a (possibly coalesced) fetch yields.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// The body.
    body: Bytes,
    /// The client-facing policy of this answer.
    policy: CachePolicy,
    /// Whether the answer is for one caller only (`private`).
    private: bool,
    /// The identity scope it was fetched with.
    scope: String,
}

/// What a (possibly coalesced) call yields.
pub(crate) type FlightResult = Result<Arc<Fetched>, DownstreamError>;

/// The keys of one GET.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// The caller's own key (identity included).
    own: String,
    /// The key shared by all callers, for `shared` downstreams.
    shared: Option<String>,
    /// The identity scope (what the downstream sees of the caller), empty without identity.
    scope: String,
    /// The path and query (for the per-route TTL).
    path: String,
}

impl Keys {
    /// The keys of a GET of `path_and_query` with `extra` headers by the caller of `ctx`. The identity part
    /// is exactly what the downstream receives of the caller (the identity headers).
    pub(crate) fn new(
        downstream: &str,
        shared: bool,
        ctx: &RequestContext,
        path_and_query: &str,
        extra: &[(axum::http::HeaderName, axum::http::HeaderValue)],
    ) -> Self {
        let scope = ctx.identity_headers().scope().to_owned();
        let mut request = path_and_query.to_owned();
        for (name, value) in extra {
            request.push('\u{1f}');
            request.push_str(name.as_str());
            request.push(':');
            request.push_str(&String::from_utf8_lossy(value.as_bytes()));
        }
        Self {
            own: format!("{downstream}\u{1e}{scope}\u{1e}{request}"),
            shared: shared.then(|| format!("{downstream}\u{1e}*\u{1e}{request}")),
            scope,
            path: path_and_query.to_owned(),
        }
    }

    /// The key of one item of a batch answer (see [`batch`]): stored shared, never per caller.
    pub(crate) fn item(key: String) -> Self {
        Self {
            path: String::new(),
            own: key,
            shared: None,
            scope: String::new(),
        }
    }

    /// Every key an answer may be stored under (the caller's own, and the shared one).
    pub(crate) fn all(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.own.as_str()).chain(self.shared.as_deref())
    }

    /// The key the coalesced call is made under.
    fn flight(&self) -> &str {
        self.shared.as_deref().unwrap_or(&self.own)
    }
}

/// The counters of one downstream's cache.
#[derive(Debug, Clone)]
pub(crate) struct CacheCounters {
    pub(crate) hits: Counter,
    pub(crate) misses: Counter,
    pub(crate) stale_revalidate: Counter,
    pub(crate) stale_if_error: Counter,
    pub(crate) coalesced: Counter,
    pub(crate) batch_calls: Counter,
    pub(crate) batch_lookups: Counter,
}

impl CacheCounters {
    fn new(metrics: &Metrics, downstream: &str) -> Self {
        let l = [("downstream", downstream)];
        Self {
            hits: metrics.counter(
                "bff_cache_hits_total",
                "Downstream GETs answered from a fresh cache entry.",
                &l,
            ),
            misses: metrics.counter(
                "bff_cache_misses_total",
                "Downstream GETs not answered from the cache (a call was made or joined).",
                &l,
            ),
            stale_revalidate: metrics.counter(
                "bff_cache_stale_while_revalidate_total",
                "Stale entries served while one background call refreshed them.",
                &l,
            ),
            stale_if_error: metrics.counter(
                "bff_cache_stale_if_error_total",
                "Stale entries served because the downstream call failed.",
                &l,
            ),
            coalesced: metrics.counter(
                "bff_cache_coalesced_total",
                "GETs that joined an identical call already in flight instead of calling.",
                &l,
            ),
            batch_calls: metrics.counter(
                "bff_batch_calls_total",
                "Batch calls made by the cross-request batcher.",
                &l,
            ),
            batch_lookups: metrics.counter(
                "bff_batch_lookups_total",
                "Item lookups (requests' id lists) served by the cross-request batcher.",
                &l,
            ),
        }
    }
}

/// The cache policy and state of one downstream: its config, the gateway's store, the calls in flight.
#[derive(Debug)]
pub(crate) struct DownstreamCache {
    /// `[downstreams.<name>.cache]`.
    pub(crate) config: DownstreamCacheConfig,
    /// The gateway's store (shared by all downstreams).
    pub(crate) store: Arc<Store>,
    /// Calls in flight by key (weak: a call whose waiters all went away is dropped, i.e. cancelled).
    flights: Mutex<HashMap<String, WeakShared<BoxFuture<'static, FlightResult>>>>,
    /// Counters.
    pub(crate) counters: CacheCounters,
    /// The configured windows, converted once: `max_ttl_s`, `stale_while_revalidate_s`, `stale_if_error_s`.
    max_ttl: Duration,
    swr: Duration,
    sie: Duration,
}

/// Flights map size beyond which dead entries are swept.
const FLIGHTS_SWEEP_AT: usize = 1_024;

impl DownstreamCache {
    /// The cache of the downstream `name`.
    pub(crate) fn new(
        name: &str,
        config: DownstreamCacheConfig,
        store: Arc<Store>,
        metrics: &Metrics,
    ) -> Self {
        Self {
            max_ttl: Duration::from_secs(config.max_ttl_s),
            swr: Duration::from_secs(config.stale_while_revalidate_s),
            sie: Duration::from_secs(config.stale_if_error_s),
            config,
            store,
            flights: Mutex::new(HashMap::new()),
            counters: CacheCounters::new(metrics, name),
        }
    }

    fn storing(&self) -> bool {
        self.config.enabled && self.store.is_enabled()
    }

    /// Whether GETs skip the cache entirely: nothing is stored and nothing coalesced, so no key is built and
    /// no flight is tracked; the answer only records its client-facing policy ([`Self::policy_of`]).
    pub(crate) fn bypassed(&self) -> bool {
        !self.config.coalesce && !self.storing()
    }

    /// The freshness windows and client-facing policy of `answer` to a GET of `path`: `per_caller` when the
    /// answer is keyed by the caller's identity (not shared and an identity was sent). The one place the
    /// freshness rules live (store, bypass and batcher all use it).
    pub(crate) fn freshness_of(&self, answer: &Answer, path: &str, per_caller: bool) -> Windows {
        let d = answer
            .cache_control
            .as_deref()
            .map(Directives::parse)
            .unwrap_or_default();
        let fresh_for = if d.no_store || d.no_cache {
            Duration::ZERO
        } else {
            Duration::from_secs(d.max_age.unwrap_or_else(|| self.config.ttl_for(path)))
                .min(self.max_ttl)
        };
        let swr = if d.no_cache || d.must_revalidate {
            Duration::ZERO
        } else {
            self.swr
        };
        let sie = if d.must_revalidate {
            Duration::ZERO
        } else {
            self.sie
        };
        let per_caller = d.private || per_caller;
        Windows {
            fresh_for,
            swr,
            sie,
            per_caller,
            private: d.private,
            no_store: d.no_store,
        }
    }

    /// The client-facing policy of a GET answer that bypassed the cache.
    pub(crate) fn policy_of(&self, answer: &Answer, path: &str, per_caller: bool) -> CachePolicy {
        let w = self.freshness_of(answer, path, per_caller);
        CachePolicy::part(w.fresh_for, w.per_caller, w.no_store)
    }

    /// Layer 1 of the call stack, the lookup: under the caller's keys (for a `shared` downstream the shared
    /// key first, then the caller's own), a fresh entry is a hit (counted, its policy recorded); an entry
    /// within `stale_while_revalidate_s` is served stale (`refresh` tells whether this caller starts the one
    /// background refresh); an entry only within `stale_if_error_s` is kept aside for a failed call.
    pub(crate) async fn lookup(&self, ctx: &RequestContext, keys: &Keys) -> Lookup {
        let mut kept = None;
        if self.storing() {
            let candidates = keys.shared.iter().chain(std::iter::once(&keys.own));
            for key in candidates {
                let Some(entry) = self.store.get(key).await else {
                    continue;
                };
                let private = entry.private || (keys.shared.is_none() && !keys.scope.is_empty());
                match entry.freshness() {
                    Freshness::Fresh(left) => {
                        self.counters.hits.inc();
                        ctx.record_cache(CachePolicy::part(left, private, false));
                        return Lookup::Hit(entry.body.clone());
                    }
                    Freshness::Revalidate => {
                        return Lookup::Revalidate(Kept { entry, private });
                    }
                    Freshness::IfError => {
                        kept.get_or_insert(Kept { entry, private });
                    }
                    Freshness::Expired => {}
                }
            }
        }
        Lookup::Miss(kept)
    }

    /// Serves a stale entry found by [`Self::lookup`] within `stale_while_revalidate_s`; whether this caller
    /// starts the one background refresh.
    pub(crate) fn serve_revalidating(&self, ctx: &RequestContext, kept: &Kept) -> bool {
        self.counters.stale_revalidate.inc();
        mark_stale(ctx, kept.private);
        kept.entry.start_refresh()
    }

    /// Layer 2 of the call stack, coalescing: one call per key in flight. `lead` makes the call when none is
    /// in flight (it becomes the flight concurrent identical misses join). Returns the result and whether it
    /// was joined (another caller's call).
    pub(crate) async fn coalesce(
        &self,
        keys: &Keys,
        lead: impl FnOnce() -> BoxFuture<'static, FlightResult>,
    ) -> (FlightResult, bool) {
        let flight_key = keys.flight();
        let (flight, joined) = {
            let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            match flights.get(flight_key).and_then(WeakShared::upgrade) {
                Some(flight) => (flight, true),
                None => {
                    if flights.len() >= FLIGHTS_SWEEP_AT {
                        flights.retain(|_, f| f.upgrade().is_some());
                    }
                    let flight: Shared<BoxFuture<'static, FlightResult>> = lead().shared();
                    if let Some(weak) = flight.downgrade() {
                        flights.insert(flight_key.to_owned(), weak);
                    }
                    (flight, false)
                }
            }
        };
        if joined {
            self.counters.coalesced.inc();
        }
        let result = flight.clone().await;
        {
            let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            let same = flights
                .get(flight_key)
                .and_then(WeakShared::upgrade)
                .is_none_or(|f| f.ptr_eq(&flight));
            if same {
                flights.remove(flight_key);
            }
        }
        (result, joined)
    }

    /// Whether a waiter of `keys` that joined another caller's call must call for itself: the answer is
    /// `private` to another identity, or the call ran out of its leader's time while the waiter has time left.
    pub(crate) fn call_for_self(result: &FlightResult, keys: &Keys, ctx: &RequestContext) -> bool {
        match result {
            Ok(fetched) => fetched.private && fetched.scope != keys.scope,
            Err(e) => {
                e.kind == DownstreamErrorKind::Deadline
                    && tokio::time::Instant::now() < ctx.deadline()
            }
        }
    }

    /// Stores a storable `answer` to a GET of `keys` under the right key (shared, unless `private`).
    pub(crate) async fn store_answer(&self, keys: Keys, answer: Answer) -> Arc<Fetched> {
        let w = self.freshness_of(
            &answer,
            &keys.path,
            keys.shared.is_none() && !keys.scope.is_empty(),
        );
        if let Some(entry) = self.entry(answer.body.clone(), &w, true) {
            let key = match (&keys.shared, w.private) {
                (Some(shared), false) => shared.clone(),
                _ => keys.own.clone(),
            };
            self.store.put(key, Arc::new(entry)).await;
        }
        Arc::new(Fetched {
            body: answer.body,
            policy: CachePolicy::part(w.fresh_for, w.per_caller, w.no_store),
            private: w.private,
            scope: keys.scope,
        })
    }

    /// The one storing rule: the entry to keep for an answer with windows `w`, if any — none when the store
    /// or this downstream's cache is off, the answer is `no-store`, or no window is left. `revalidate`: whether
    /// the entry may be served while a background call refreshes it (not for batch items).
    pub(crate) fn entry(&self, body: Bytes, w: &Windows, revalidate: bool) -> Option<Entry> {
        if !self.storing() || w.no_store {
            return None;
        }
        let swr = if revalidate { w.swr } else { Duration::ZERO };
        let entry = Entry::new(body, w.fresh_for, swr, w.sie, w.per_caller);
        (entry.lifetime() > Duration::ZERO).then_some(entry)
    }

    /// The end of layer 1: the answer of a call (its policy recorded), or, when the downstream failed (not a
    /// 404 or other 4xx) and a stale entry was kept aside, that entry (`part=stale`).
    pub(crate) fn answer_or_stale(
        &self,
        ctx: &RequestContext,
        result: FlightResult,
        kept: Option<Kept>,
    ) -> Result<Bytes, DownstreamError> {
        match result {
            Ok(fetched) => {
                ctx.record_cache(fetched.policy);
                Ok(fetched.body.clone())
            }
            Err(e) if serves_stale(e.kind) && kept.is_some() => {
                let Some(kept) = kept else {
                    return Err(e);
                };
                tracing::warn!(error = %e, "downstream failed; stale cache entry served");
                self.counters.stale_if_error.inc();
                mark_stale(ctx, kept.private);
                Ok(kept.entry.body.clone())
            }
            Err(e) => Err(e),
        }
    }
}

/// What the lookup found.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// A fresh entry (counted, its policy recorded).
    Hit(Bytes),
    /// An entry within `stale_while_revalidate_s`.
    Revalidate(Kept),
    /// Nothing servable now; maybe an entry within `stale_if_error_s` for a failed call.
    Miss(Option<Kept>),
}

/// A stale entry and whether it belongs to one caller.
#[derive(Debug)]
pub(crate) struct Kept {
    pub(crate) entry: Arc<Entry>,
    pub(crate) private: bool,
}

/// The freshness windows of one answer (see [`DownstreamCache::freshness_of`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Windows {
    /// How long the answer is fresh.
    pub(crate) fresh_for: Duration,
    /// How long after that it is served while one background call refreshes it.
    pub(crate) swr: Duration,
    /// How long after freshness it is served when the downstream fails.
    pub(crate) sie: Duration,
    /// Whether the answer belongs to one caller (`private`, or keyed by the caller's identity).
    pub(crate) per_caller: bool,
    /// Whether the downstream marked it `private`.
    pub(crate) private: bool,
    /// Whether the downstream marked it `no-store`.
    pub(crate) no_store: bool,
}

/// Time a background refresh may take at most (the downstream's own timeout usually ends it sooner).
pub(crate) const BACKGROUND_BUDGET: Duration = Duration::from_secs(10);

/// Records a stale serve: revalidate-every-time for the client, and `part=stale` in `bff-degraded`.
fn mark_stale(ctx: &RequestContext, private: bool) {
    ctx.record_cache(CachePolicy::part(Duration::ZERO, private, false));
    if let Some(part) = current_part() {
        ctx.mark_degraded(part, "stale");
    }
}

/// Whether a failure may be answered with a stale entry: the downstream failed or was not called (breaker,
/// bulkhead, deadline), as opposed to answering "no such thing" or "bad request".
fn serves_stale(kind: DownstreamErrorKind) -> bool {
    !matches!(
        kind,
        DownstreamErrorKind::NotFound | DownstreamErrorKind::Forbidden
    ) && !matches!(kind, DownstreamErrorKind::Status(s) if s < 500)
}
