//! Composition: the parts of a composed response run in parallel under the request's deadline. A required part
//! that fails fails the request (and, inside `tokio::try_join!`, cancels its still-running siblings); an
//! optional part that fails becomes `None` and is named in the `bff-partial` header.
//!
//! ```no_run
//! # use bff_core::{context::RequestContext, downstream::Downstream, error::BffError};
//! # use serde_json::Value;
//! # async fn screen(ctx: RequestContext, users: Downstream, orders: Downstream, recs: Downstream)
//! #     -> Result<(), BffError> {
//! let (profile, orders, recs) = tokio::try_join!(
//!     ctx.required("profile", users.get_json::<Value>(&ctx, "/users/7")),
//!     ctx.required("orders", orders.get_json::<Value>(&ctx, "/users/7/orders?limit=5")),
//!     ctx.optional("recommendations", recs.get_json::<Value>(&ctx, "/users/7/recommendations")),
//! )?;
//! let _: (Value, Value, Option<Value>) = (profile, orders, recs);
//! # Ok(()) }
//! ```
//! Dependent calls are plain sequential `.await`s; list enrichment collects ids with [`unique_ids`] and fetches
//! them in one batch call, then looks them up with [`index_by`].

use std::collections::HashMap;
use std::hash::Hash;

use futures::future::Either;

use crate::context::{RequestContext, in_part};
use crate::downstream::DownstreamError;
use crate::error::BffError;
use crate::otel::PartGuard;

/// Name of the response header listing the optional parts that failed, comma-separated.
pub const PARTIAL_HEADER: &str = "bff-partial";

impl RequestContext {
    /// Runs a required part under the request deadline; its failure becomes the request's error.
    ///
    /// `T: Clone + Send + Sync + 'static` lets a streamed screen (see [`crate::streams::screen`]) keep the
    /// part's answer for its later renderings; an ordinary request never clones it.
    pub fn required<T: Clone + Send + Sync + 'static>(
        &self,
        part: &'static str,
        fut: impl Future<Output = Result<T, DownstreamError>>,
    ) -> impl Future<Output = Result<T, BffError>> {
        // An ordinary request awaits the part itself (no box, no wrapper state); only the passes of a
        // streamed screen go through the pass.
        let run = self.run_required(part, fut);
        match self.pass() {
            None => Either::Left(run),
            Some(pass) => Either::Right(Box::pin(pass.required(part, run))),
        }
    }

    /// Runs a required part whose answer is a connection rather than data (e.g. a downstream's
    /// [`crate::downstream::LineStream`]), like [`RequestContext::required`] without its bounds: it is never
    /// part of a streamed screen (a render pass refuses it, and the screen is then served unstreamed).
    pub async fn required_stream<T>(
        &self,
        part: &'static str,
        fut: impl Future<Output = Result<T, DownstreamError>>,
    ) -> Result<T, BffError> {
        if self
            .pass()
            .is_some_and(crate::streams::screen::Pass::renders)
        {
            return Err(BffError::Internal);
        }
        self.run_required(part, fut).await
    }

    /// Runs an optional part under the request deadline; on failure it is `None` and marked partial.
    /// Never fails, so it can sit in a `try_join!` next to required parts.
    pub fn optional<T: Clone + Send + Sync + 'static>(
        &self,
        part: &'static str,
        fut: impl Future<Output = Result<T, DownstreamError>>,
    ) -> impl Future<Output = Result<Option<T>, BffError>> {
        // An ordinary request awaits the part itself (no box, no wrapper state); only the passes of a
        // streamed screen go through the pass.
        let run = self.run_optional(part, fut);
        match self.pass() {
            None => Either::Left(run),
            Some(pass) => Either::Right(Box::pin(pass.optional(part, run))),
        }
    }

    async fn run_required<T>(
        &self,
        part: &'static str,
        fut: impl Future<Output = Result<T, DownstreamError>>,
    ) -> Result<T, BffError> {
        let started = tokio::time::Instant::now();
        let span = self.part_span(part);
        let span_id = span.as_ref().map(PartGuard::id);
        let result = tokio::time::timeout_at(self.deadline(), in_part(part, span_id, fut)).await;
        self.record_part(part, matches!(result, Ok(Ok(_))), started.elapsed(), span);
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                tracing::warn!(part, error = %e, "required part failed");
                Err(BffError::from_part(part, &e))
            }
            Err(_) => {
                tracing::warn!(part, "required part ran out of time");
                Err(BffError::DeadlineExceeded { part: Some(part) })
            }
        }
    }

    async fn run_optional<T>(
        &self,
        part: &'static str,
        fut: impl Future<Output = Result<T, DownstreamError>>,
    ) -> Result<Option<T>, BffError> {
        let started = tokio::time::Instant::now();
        let span = self.part_span(part);
        let span_id = span.as_ref().map(PartGuard::id);
        let result = tokio::time::timeout_at(self.deadline(), in_part(part, span_id, fut)).await;
        self.record_part(part, matches!(result, Ok(Ok(_))), started.elapsed(), span);
        match result {
            Ok(Ok(value)) => Ok(Some(value)),
            Ok(Err(e)) => {
                tracing::info!(part, error = %e, "optional part failed; partial response");
                self.mark_partial(part);
                Ok(None)
            }
            Err(_) => {
                tracing::info!(part, "optional part ran out of time; partial response");
                self.mark_partial(part);
                Ok(None)
            }
        }
    }
}

/// The distinct ids of `ids`, in first-seen order (for one batch call).
pub fn unique_ids<'a>(ids: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    ids.into_iter()
        .filter(|id| seen.insert(*id))
        .map(str::to_owned)
        .collect()
}

/// Indexes the items of a batch answer by `key`.
pub fn index_by<T, K: Eq + Hash>(items: Vec<T>, key: impl Fn(&T) -> K) -> HashMap<K, T> {
    items.into_iter().map(|item| (key(&item), item)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::downstream::DownstreamErrorKind;
    use crate::trace::TraceContext;
    use std::time::Duration;
    use tokio::time::Instant;

    fn ctx(budget_ms: u64) -> RequestContext {
        RequestContext::new(
            "rid".into(),
            TraceContext::from_headers(&Default::default()),
            None,
            Instant::now() + Duration::from_millis(budget_ms),
        )
    }

    async fn fail_after(ms: u64) -> Result<u32, DownstreamError> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Err(DownstreamError::new("x", DownstreamErrorKind::Status(500)))
    }

    /// An optional failure yields None and is recorded; a required failure is the error.
    #[tokio::test]
    async fn optional_and_required_failures() {
        let ctx = ctx(1_000);
        let r = tokio::try_join!(
            ctx.optional("recs", fail_after(1)),
            ctx.required("a", async { Ok(1) })
        );
        assert_eq!(r.unwrap(), (None, 1));
        assert_eq!(ctx.partial_parts(), vec!["recs"]);
        let r = tokio::try_join!(
            ctx.required("profile", fail_after(1)),
            ctx.optional("b", async { Ok(2) })
        );
        assert_eq!(r.unwrap_err(), BffError::BadGateway { part: "profile" });
    }

    /// A failing required part cancels a slow sibling instead of waiting for it.
    #[tokio::test(start_paused = true)]
    async fn required_failure_cancels_siblings() {
        let ctx = ctx(60_000);
        let started = Instant::now();
        let slow = async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, DownstreamError>(())
        };
        let r = tokio::try_join!(
            ctx.required("slow", slow),
            ctx.required("fast", fail_after(10))
        );
        assert!(r.is_err());
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    /// A part still running at the deadline ends the request with 504 at the deadline.
    #[tokio::test(start_paused = true)]
    async fn deadline_bounds_parts() {
        let ctx = ctx(100);
        let r = ctx.required("slow", async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, DownstreamError>(())
        });
        assert_eq!(
            r.await.unwrap_err(),
            BffError::DeadlineExceeded { part: Some("slow") }
        );
    }

    /// Batch ids are deduplicated in order.
    #[test]
    fn unique_ids_dedupes_in_order() {
        assert_eq!(unique_ids(["3", "1", "3", "2", "1"]), vec!["3", "1", "2"]);
    }
}
