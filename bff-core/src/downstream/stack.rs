//! The downstream call stack: every call of a [`Downstream`] — a read, a batch call, the JWKS, a command —
//! is one [`CallRequest`] sent through the same layers, outermost first:
//!
//! ```text
//!   Batcher (cache/batch.rs: item lookups of concurrent requests merged; sends CallKind::Uncached calls)
//!     │
//!   1 cache            reads only: fresh hit, stale-while-revalidate, stale-if-error, store    (cache/mod.rs)
//!   2 coalesce         reads only: one call per key in flight                                  (cache/mod.rs)
//!   3 retry / hedge    idempotent calls only: retries within the budget, a hedged 2nd attempt  (resilience/retry.rs)
//!   4 breaker/bulkhead every attempt: circuit breaker permit, bulkhead slot                    (resilience/breaker.rs)
//!   5 balance          every attempt: one instance (p2c / round-robin, ejected skipped)        (resilience/balance.rs)
//!   6 transport        every attempt: HTTP/1.1 · HTTP/2 · TLS, or gRPC over HTTP/2            (downstream/transport.rs, grpc.rs)
//! ```
//!
//! Read top to bottom, this file is the stack: [`Downstream::send`] (layers 1–2, and which layers a call
//! skips), `call` (layer 3, the loop of attempts), `attempt` (layers 4–6 of one attempt), each layer marked by
//! a `// Layer n` comment. The unsafe layers are skipped by the call's [`CallKind`], never by accident: a
//! command ([`CallKind::Once`]) passes layers 4–6 once. Layers 1–2 live in the cache's steps
//! (`lookup`, `coalesce`, `store_answer`, `answer_or_stale`) called from here; the cache never calls the
//! downstream itself (the stack hands `coalesce` the call to lead when no identical one is in flight).

use std::time::Duration;

use futures::FutureExt;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::Instrument;

use super::request::{Answer, CallKind, CallRequest};
use super::{Downstream, DownstreamError, DownstreamErrorKind};
use crate::cache::{BACKGROUND_BUDGET, DownstreamCache, FlightResult, Keys, Lookup};
use crate::metrics::DownstreamOutcome;
use crate::otel::Attempt;
use crate::resilience::breaker::{Breaker, Outcome};
use crate::resilience::retry::is_retryable_failure;

/// The result of one attempt, and the instance it went to (avoided by the next retry).
type Tried = (Result<Answer, DownstreamError>, Option<usize>);

impl Downstream {
    /// Sends `req` through the call stack (see the module docs) and returns its answer. A read's answer
    /// records its client-facing cache policy on the request context.
    pub(crate) async fn send(&self, req: CallRequest) -> Result<Answer, DownstreamError> {
        // A render pass of a streamed screen calls nothing (its parts answer from the driver pass): a call
        // outside the parts fails that rendering, and the screen is then served unstreamed.
        if req
            .ctx()
            .pass()
            .is_some_and(crate::streams::screen::Pass::renders)
        {
            tracing::debug!(downstream = %self.inner.name, "call outside a part in a streamed screen");
            return Err(self.err(DownstreamErrorKind::Saturated));
        }
        let cache = &self.inner.cache;
        if req.kind != CallKind::Read || cache.bypassed() || req.rpc {
            // Layers 1 and 2 skipped: an uncached read or an unsafe call goes straight to layer 3, and so
            // does a read of a downstream with cache and coalescing off, or a gRPC read (no key, no flight;
            // its answer only records its client policy).
            let answer = self.call(&req).await?;
            if req.kind == CallKind::Read {
                let per_caller = !cache.config.shared && req.ctx().identity().is_some();
                req.ctx()
                    .record_cache(cache.policy_of(&answer, &req.path_and_query, per_caller));
            }
            return Ok(answer);
        }
        let keys = Keys::new(
            &self.inner.name,
            cache.config.shared,
            req.ctx(),
            &req.path_and_query,
            &req.extra,
        );
        // Layer 1 — cache: a fresh entry answers; a stale one within stale-while-revalidate answers and is
        // refreshed by one background call; one within stale-if-error is kept aside for a failed call.
        // (The two cache layers' futures are boxed: kept inline they would enlarge every call's future, the
        // uncached ones included, and be copied with it.)
        let kept = match Box::pin(cache.lookup(req.ctx(), &keys)).await {
            Lookup::Hit(body) => return Ok(Answer::cached(body)),
            Lookup::Revalidate(kept) => {
                if cache.serve_revalidating(req.ctx(), &kept) {
                    self.refresh_in_background(&req, keys);
                }
                return Ok(Answer::cached(kept.entry.body.clone()));
            }
            Lookup::Miss(kept) => kept,
        };
        cache.counters.misses.inc();
        // Layer 2 — coalesce: one call per key in flight; a waiter that may not use the leader's answer (a
        // `private` answer of another identity, the leader's deadline) calls for itself.
        let result = Box::pin(self.coalesced(&req, &keys)).await;
        // Back in layer 1: the answer, or the stale entry kept aside when the call failed.
        cache
            .answer_or_stale(req.ctx(), result, kept)
            .map(Answer::cached)
    }

    /// Layer 2 for `req` under `keys`: joins the identical call in flight or leads one (layers 3–6, then the
    /// answer stored by layer 1's rule).
    async fn coalesced(&self, req: &CallRequest, keys: &Keys) -> FlightResult {
        let cache = &self.inner.cache;
        if !cache.config.coalesce {
            return self.clone().call_and_store(req.clone(), keys.clone()).await;
        }
        let lead = || {
            self.clone()
                .call_and_store(req.clone(), keys.clone())
                .boxed()
        };
        let (result, joined) = cache.coalesce(keys, lead).await;
        if joined && DownstreamCache::call_for_self(&result, keys, req.ctx()) {
            return self.clone().call_and_store(req.clone(), keys.clone()).await;
        }
        result
    }

    /// Layers 3–6 for a read that missed, then its answer stored (what a coalesced flight runs).
    async fn call_and_store(self, req: CallRequest, keys: Keys) -> FlightResult {
        let answer = self.call(&req).await?;
        Ok(self.inner.cache.store_answer(keys, answer).await)
    }

    /// Starts one background call refreshing `keys` (its own deadline: the downstream's timeout applies).
    fn refresh_in_background(&self, req: &CallRequest, keys: Keys) {
        let background = req.for_context(
            req.ctx()
                .detached(tokio::time::Instant::now() + BACKGROUND_BUDGET),
        );
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.coalesced(&background, &keys).await {
                tracing::info!(error = %e, "background refresh failed; stale entry kept");
            }
        });
    }

    /// Layer 3 — retry / hedge: attempts until success, a failure that is not retried, the retry limit, the
    /// retry budget, or the request deadline. Only idempotent calls are retried or hedged; a
    /// [`CallKind::Once`] call makes exactly one attempt.
    async fn call(&self, req: &CallRequest) -> Result<Answer, DownstreamError> {
        let inner = &*self.inner;
        // One clock reading for the start of the call, its first deadline check and the retry budget.
        let started = Instant::now();
        let deadline = req.deadline();
        let span = tracing::info_span!("downstream", downstream = %inner.name, method = %req.method, path = %req.path_and_query);
        let result = async {
            let idempotent = req.idempotent();
            if idempotent {
                inner.budget.record_call(started);
            }
            let mut retries = 0;
            let mut avoid = None;
            loop {
                // No attempt starts once the request's budget is spent.
                let now = if retries == 0 { started } else { Instant::now() };
                if now >= deadline {
                    return Err(self.err(DownstreamErrorKind::Deadline));
                }
                let number = retries + 1;
                let first = Attempt { number, hedge: false };
                let attempt = self.attempt(req, avoid, first);
                let (result, instance) = match inner.retry.hedge_after {
                    Some(delay) if idempotent => {
                        let hedge = self.attempt(req, avoid, Attempt { number, hedge: true });
                        // Boxed: two attempts side by side (~6 KiB of state) kept inline would make every
                        // call's future that size, hedged or not, and it is copied as the future moves.
                        Box::pin(self.hedged(attempt, hedge, delay, deadline)).await
                    }
                    _ => attempt.await,
                };
                let error = match result {
                    Ok(body) => return Ok(body),
                    Err(e) => e,
                };
                if !idempotent
                    || !is_retryable_failure(error.kind)
                    || retries >= inner.retry.max_retries
                {
                    return Err(error);
                }
                retries += 1;
                let backoff = inner.retry.backoff(retries);
                if Instant::now() + backoff >= deadline {
                    tracing::debug!(error = %error, "no time left to retry");
                    return Err(error);
                }
                if !inner.budget.try_withdraw() {
                    tracing::debug!(error = %error, "retry budget exhausted; not retried");
                    return Err(error);
                }
                inner.metrics.retry();
                tracing::debug!(error = %error, retry = retries, backoff_ms = backoff.as_millis() as u64, "retrying");
                tokio::time::sleep(backoff).await;
                avoid = instance;
            }
        }
        .instrument(span)
        .await;
        result.inspect_err(|e| {
            let elapsed_ms = started.elapsed().as_millis() as u64;
            if matches!(e.kind, DownstreamErrorKind::CircuitOpen { .. }) {
                tracing::debug!(error = %e, elapsed_ms, "downstream call failed fast");
            } else {
                tracing::warn!(error = %e, elapsed_ms, "downstream call failed");
            }
        })
    }

    /// Runs `first`; if it has not finished after `delay`, starts `second` too (within the retry budget) and
    /// takes the first success (or the last failure).
    async fn hedged<F>(&self, first: F, second: F, delay: Duration, deadline: Instant) -> Tried
    where
        F: Future<Output = Tried>,
    {
        let mut first = std::pin::pin!(first);
        tokio::select! {
            result = &mut first => return result,
            () = tokio::time::sleep(delay) => {}
        }
        if Instant::now() >= deadline || !self.inner.budget.try_withdraw() {
            return first.await;
        }
        self.inner.metrics.hedge();
        tracing::debug!(
            delay_ms = delay.as_millis() as u64,
            "hedging: second attempt"
        );
        let second = std::pin::pin!(second);
        match futures::future::select(first, second).await {
            futures::future::Either::Left((result, other))
            | futures::future::Either::Right((result, other)) => {
                if result.0.is_ok() {
                    result
                } else {
                    other.await
                }
            }
        }
    }

    /// One attempt, layers 4–6 (recorded as a client span when the request is traced): through the breaker
    /// and the bulkhead to one instance, bounded by the per-call timeout and the request deadline. Returns
    /// the instance tried, if any.
    async fn attempt(&self, req: &CallRequest, avoid: Option<usize>, which: Attempt) -> Tried {
        let inner = &*self.inner;
        let ctx = req.ctx();
        let span = ctx
            .spans()
            .map(|s| s.attempt(&inner.name, req.method.as_str(), which));
        // Layer 4 — breaker / bulkhead: an open breaker or a full bulkhead fails the attempt at once.
        let permit = match inner.breaker.as_ref().map(Breaker::try_acquire) {
            None => None,
            Some(Ok(permit)) => Some(permit),
            Some(Err(wait)) => {
                let retry_after_ms = wait.as_millis() as u64;
                inner
                    .metrics
                    .attempt(DownstreamOutcome::BreakerOpen, Duration::ZERO);
                let result = Err(self.err(DownstreamErrorKind::CircuitOpen { retry_after_ms }));
                return finish_span(span, result, None);
            }
        };
        let _slot = match inner.bulkhead.as_ref().map(Semaphore::try_acquire) {
            None => None,
            Some(Ok(slot)) => Some(slot),
            Some(Err(_)) => {
                inner
                    .metrics
                    .attempt(DownstreamOutcome::BulkheadFull, Duration::ZERO);
                return finish_span(span, Err(self.err(DownstreamErrorKind::Saturated)), None);
            }
        };
        // Layer 5 — balance: one instance (p2c / round-robin, ejected ones and `avoid` skipped when possible).
        let i = inner.instances.pick(avoid);
        let _in_flight = inner.instances.start(i);
        let instance = inner.instances.get(i);
        let deadline = req.deadline();
        let sent = Instant::now();
        let call_deadline = (sent + inner.timeout).min(deadline);
        // Layer 6 — transport: the request sent and the answer read, within min(per-call timeout, deadline).
        let send = inner.transport.send(
            &inner.name,
            req,
            (i, instance),
            super::transport::Budget {
                sent,
                deadline: call_deadline,
            },
            span.as_ref().map(crate::otel::AttemptGuard::id),
        );
        let result = match tokio::time::timeout_at(call_deadline, send).await {
            Ok(r) => r,
            Err(_) if call_deadline == deadline => Err(self.err(DownstreamErrorKind::Deadline)),
            Err(_) => Err(self.err(DownstreamErrorKind::Timeout)),
        };
        // One clock reading for the attempt's duration, the breaker's window and the instance's health.
        let done = Instant::now();
        inner.metrics.attempt(
            DownstreamOutcome::of(result.as_ref().map(|_| ()).map_err(|e| e.kind)),
            done.saturating_duration_since(sent),
        );
        // Back in layers 5 and 4: the outcome feeds the instance's health and the breaker.
        let outcome = outcome_of(&result);
        if let Some(permit) = permit {
            permit.record_at(outcome, done);
        }
        inner.instances.observe(i, outcome, done);
        finish_span(span, result, Some(i))
    }
}

/// Ends an attempt's span (when traced) with the attempt's status or error.
fn finish_span(
    span: Option<crate::otel::AttemptGuard>,
    result: Result<Answer, DownstreamError>,
    instance: Option<usize>,
) -> Tried {
    if let Some(span) = span {
        let (status, error) = match &result {
            Ok(answer) => (Some(answer.status.as_u16()), None),
            Err(e) => match e.kind {
                DownstreamErrorKind::Status(s) => (Some(s), Some(s.to_string())),
                DownstreamErrorKind::NotFound => (Some(404), Some("404".to_owned())),
                kind => (
                    None,
                    Some(DownstreamOutcome::of(Err(kind)).as_str().to_owned()),
                ),
            },
        };
        span.finish(status, error);
    }
    (result, instance)
}

/// What an attempt's result says about the downstream's health: it failed (unreachable, reset, timed out,
/// 5xx), it answered (2xx, 404 and other 4xx, an oversized body), or nothing (the request's own budget ran
/// out, or the attempt never left).
fn outcome_of(result: &Result<Answer, DownstreamError>) -> Outcome {
    use DownstreamErrorKind as K;
    match result {
        Ok(_) => Outcome::Success,
        Err(e) => match e.kind {
            K::Connect | K::Timeout | K::Body | K::Unavailable => Outcome::Failure,
            K::Status(s) if s >= 500 => Outcome::Failure,
            K::GrpcStatus(code) if crate::downstream::grpc::is_server_fault(code) => {
                Outcome::Failure
            }
            K::Status(_)
            | K::NotFound
            | K::Forbidden
            | K::GrpcStatus(_)
            | K::Decode
            | K::TooLarge => Outcome::Success,
            K::Deadline | K::CircuitOpen { .. } | K::Saturated => Outcome::Ignore,
        },
    }
}
