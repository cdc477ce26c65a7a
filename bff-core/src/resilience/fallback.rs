//! Fallbacks of composed parts: when a part's call fails, answer with the last good value of that part (no
//! older than a configured age) or a static default, and say so in the `bff-degraded` response header.
//!
//! ```no_run
//! # use std::time::Duration;
//! # use bff_core::{context::RequestContext, downstream::Downstream, error::BffError};
//! # use bff_core::resilience::{Fallback, LastGood};
//! # type Recommendations = Vec<serde_json::Value>;
//! # async fn handler(ctx: RequestContext, recommendations: Downstream, user_id: String) -> Result<(), BffError> {
//! // In the gateway's state: the last good recommendations per user, kept at most 10 minutes.
//! let recs_store: LastGood<Recommendations> = LastGood::new(Duration::from_secs(600), 10_000);
//! // In the handler: fresh when possible, else the last good value, else an empty list.
//! let path = format!("/users/{user_id}/recommendations");
//! let recs = ctx
//!     .optional_or(
//!         "recommendations",
//!         recommendations.get_json::<Recommendations>(&ctx, &path),
//!         Fallback::stale(&recs_store, user_id).or_value(Recommendations::default()),
//!     )
//!     .await?;
//! # let _ = recs; Ok(()) }
//! ```
//! The key of a last good value must contain everything the value depends on, **the caller's identity
//! included** for private data, so one user's value is never served to another.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::Either;
use tokio::time::Instant;

use crate::context::RequestContext;
use crate::downstream::DownstreamError;
use crate::error::BffError;

/// Name of the response header listing the parts served from a fallback, comma-separated, each as
/// `part=stale` (the last good value) or `part=default` (the static default), e.g.
/// `bff-degraded: recommendations=stale,rating=default`.
pub const DEGRADED_HEADER: &str = "bff-degraded";

/// The last good values of one part, by key, each usable for at most `max_age`; at most `capacity` keys
/// (the oldest key is forgotten first). Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct LastGood<T> {
    inner: Arc<Mutex<Store<T>>>,
    max_age: Duration,
    capacity: usize,
}

#[derive(Debug)]
struct Store<T> {
    values: HashMap<String, (Instant, T)>,
    /// Keys in first-insertion order, for eviction.
    order: VecDeque<String>,
}

impl<T: Clone> LastGood<T> {
    /// An empty store: values older than `max_age` are never served, at most `capacity` keys are kept.
    pub fn new(max_age: Duration, capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Store {
                values: HashMap::new(),
                order: VecDeque::new(),
            })),
            max_age,
            capacity: capacity.max(1),
        }
    }

    /// Remembers `value` as the last good value of `key`.
    pub fn put(&self, key: &str, value: T) {
        let mut store = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if let Some(slot) = store.values.get_mut(key) {
            *slot = (now, value);
            return;
        }
        while store.values.len() >= self.capacity {
            let Some(oldest) = store.order.pop_front() else {
                break;
            };
            store.values.remove(&oldest);
        }
        store.order.push_back(key.to_owned());
        store.values.insert(key.to_owned(), (now, value));
    }

    /// The last good value of `key`, if it is at most `max_age` old.
    pub fn get(&self, key: &str) -> Option<T> {
        let store = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        store
            .values
            .get(key)
            .filter(|(at, _)| at.elapsed() <= self.max_age)
            .map(|(_, v)| v.clone())
    }
}

/// What a part answers when its call fails: the last good value, a static default, both (stale first), or
/// nothing ([`Fallback::none`]).
#[derive(Debug, Clone)]
pub struct Fallback<T> {
    stale: Option<(LastGood<T>, String)>,
    value: Option<T>,
}

impl<T: Clone> Fallback<T> {
    /// No fallback: the part fails (required) or is `null` and named in `bff-partial` (optional).
    pub fn none() -> Self {
        Self {
            stale: None,
            value: None,
        }
    }

    /// The static default `value`.
    pub fn value(value: T) -> Self {
        Self {
            stale: None,
            value: Some(value),
        }
    }

    /// The last good value of `key` in `store` (successful answers are stored there too).
    pub fn stale(store: &LastGood<T>, key: impl Into<String>) -> Self {
        Self {
            stale: Some((store.clone(), key.into())),
            value: None,
        }
    }

    /// Falls back to `value` when there is no fresh-enough last good value.
    pub fn or_value(mut self, value: T) -> Self {
        self.value = Some(value);
        self
    }

    fn remember(&self, value: &T) {
        if let Some((store, key)) = &self.stale {
            store.put(key, value.clone());
        }
    }

    /// The fallback value and its source label for `bff-degraded`.
    fn take(self) -> Option<(T, &'static str)> {
        if let Some(v) = self.stale.and_then(|(store, key)| store.get(&key)) {
            return Some((v, "stale"));
        }
        self.value.map(|v| (v, "default"))
    }
}

impl RequestContext {
    /// Runs a required part under the request deadline; when it fails, answers with `fallback` (marked in
    /// `bff-degraded`), and only without a fallback value fails the request like [`RequestContext::required`].
    pub fn required_or<T: Clone + Send + Sync + 'static>(
        &self,
        part: &'static str,
        fut: impl Future<Output = Result<T, DownstreamError>>,
        fallback: Fallback<T>,
    ) -> impl Future<Output = Result<T, BffError>> {
        // An ordinary request awaits the part itself (no box, no wrapper state); only the passes of a
        // streamed screen go through the pass.
        let run = self.run_required_or(part, fut, fallback);
        match self.pass() {
            None => Either::Left(run),
            Some(pass) => Either::Right(Box::pin(pass.required(part, run))),
        }
    }

    async fn run_required_or<T: Clone>(
        &self,
        part: &'static str,
        fut: impl Future<Output = Result<T, DownstreamError>>,
        fallback: Fallback<T>,
    ) -> Result<T, BffError> {
        match self.run_part(part, fut).await {
            Ok(value) => {
                fallback.remember(&value);
                Ok(value)
            }
            Err(error) => match fallback.take() {
                Some((value, source)) => {
                    tracing::warn!(part, source, error = %error, "required part failed; fallback served");
                    self.mark_degraded(part, source);
                    Ok(value)
                }
                None => {
                    tracing::warn!(part, error = %error, "required part failed");
                    Err(error.into_bff(part))
                }
            },
        }
    }

    /// Runs an optional part under the request deadline; when it fails, answers with `fallback` (marked in
    /// `bff-degraded`), and only without a fallback value is `None` and named in `bff-partial`.
    pub fn optional_or<T: Clone + Send + Sync + 'static>(
        &self,
        part: &'static str,
        fut: impl Future<Output = Result<T, DownstreamError>>,
        fallback: Fallback<T>,
    ) -> impl Future<Output = Result<Option<T>, BffError>> {
        // An ordinary request awaits the part itself (no box, no wrapper state); only the passes of a
        // streamed screen go through the pass.
        let run = self.run_optional_or(part, fut, fallback);
        match self.pass() {
            None => Either::Left(run),
            Some(pass) => Either::Right(Box::pin(pass.optional(part, run))),
        }
    }

    async fn run_optional_or<T: Clone>(
        &self,
        part: &'static str,
        fut: impl Future<Output = Result<T, DownstreamError>>,
        fallback: Fallback<T>,
    ) -> Result<Option<T>, BffError> {
        match self.run_part(part, fut).await {
            Ok(value) => {
                fallback.remember(&value);
                Ok(Some(value))
            }
            Err(error) => match fallback.take() {
                Some((value, source)) => {
                    tracing::info!(part, source, error = %error, "optional part failed; fallback served");
                    self.mark_degraded(part, source);
                    Ok(Some(value))
                }
                None => {
                    tracing::info!(part, error = %error, "optional part failed; partial response");
                    self.mark_partial(part);
                    Ok(None)
                }
            },
        }
    }

    async fn run_part<T>(
        &self,
        part: &'static str,
        fut: impl Future<Output = Result<T, DownstreamError>>,
    ) -> Result<T, PartError> {
        let started = tokio::time::Instant::now();
        let span = self.part_span(part);
        let span_id = span.as_ref().map(crate::otel::PartGuard::id);
        let result =
            tokio::time::timeout_at(self.deadline(), crate::context::in_part(part, span_id, fut))
                .await;
        self.record_part(part, matches!(result, Ok(Ok(_))), started.elapsed(), span);
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(PartError::Downstream(e)),
            Err(_) => Err(PartError::Deadline),
        }
    }
}

/// Why a part failed.
#[derive(Debug)]
enum PartError {
    Downstream(DownstreamError),
    Deadline,
}

impl PartError {
    fn into_bff(self, part: &'static str) -> BffError {
        match self {
            Self::Downstream(e) => BffError::from_part(part, &e),
            Self::Deadline => BffError::DeadlineExceeded { part: Some(part) },
        }
    }
}

impl std::fmt::Display for PartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Downstream(e) => e.fmt(f),
            Self::Deadline => f.write_str("request deadline exceeded"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::downstream::DownstreamErrorKind;
    use crate::trace::TraceContext;

    fn ctx() -> RequestContext {
        RequestContext::new(
            "rid".into(),
            TraceContext::from_headers(&Default::default()),
            None,
            Instant::now() + Duration::from_secs(60),
        )
    }

    async fn fail() -> Result<u32, DownstreamError> {
        Err(DownstreamError::new("x", DownstreamErrorKind::Connect))
    }

    /// A failing part is served its last good value within the age, then the default, then nothing.
    #[tokio::test(start_paused = true)]
    async fn stale_then_default_then_partial() {
        let store = LastGood::new(Duration::from_secs(10), 100);
        let c = ctx();
        let fb = || Fallback::stale(&store, "user-7").or_value(0);
        assert_eq!(
            c.optional_or("recs", async { Ok(42) }, fb()).await,
            Ok(Some(42))
        );
        assert_eq!(c.optional_or("recs", fail(), fb()).await, Ok(Some(42)));
        assert_eq!(c.degraded_parts(), vec![("recs", "stale")]);
        tokio::time::advance(Duration::from_secs(11)).await;
        let c = ctx();
        assert_eq!(c.optional_or("recs", fail(), fb()).await, Ok(Some(0)));
        assert_eq!(c.degraded_parts(), vec![("recs", "default")]);
        let c = ctx();
        assert_eq!(
            c.optional_or("recs", fail(), Fallback::stale(&store, "user-8"))
                .await,
            Ok(None)
        );
        assert_eq!(c.partial_parts(), vec!["recs"]);
        assert_eq!(
            c.required_or("p", fail(), Fallback::none()).await,
            Err(BffError::Unavailable { part: "p" })
        );
        assert_eq!(c.required_or("p", fail(), Fallback::value(5)).await, Ok(5));
    }

    /// The store forgets its oldest key beyond its capacity.
    #[test]
    fn store_is_bounded() {
        let store = LastGood::new(Duration::from_secs(10), 2);
        store.put("a", 1);
        store.put("b", 2);
        store.put("a", 3);
        store.put("c", 4);
        assert_eq!(store.get("a"), None);
        assert_eq!(store.get("b"), Some(2));
        assert_eq!(store.get("c"), Some(4));
    }
}
