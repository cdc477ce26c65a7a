//! The route guard of every API route and every screen: the route's scopes checked against the verified
//! caller (401 without one, 403 without a scope), and a `GET` asking for `text/event-stream` streamed (see
//! [`crate::streams::screen`]). A tower layer rather than `axum::middleware::from_fn`, which clones the
//! route into a new box and boxes its future on every request (−1.0 % instructions per 3-way aggregation,
//! bench/notes.md): an ordinary request here costs the scope check and, on a screen, one header look-up.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures::future::Either;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service};

use super::Scopes;
use crate::context::RequestContext;
use crate::error::BffError;
use crate::streams::screen;

/// What a guarded route checks: its scopes (`None`: the handler checks its own, as an aggregation does)
/// and whether it is a screen a client may ask to stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuardLayer {
    scopes: Option<Scopes>,
    streamed: bool,
}

impl GuardLayer {
    /// The guard of an API route needing `scopes`, streamed on request when `streamed`.
    pub(crate) fn new(scopes: Scopes, streamed: bool) -> Self {
        Self {
            scopes: Some(scopes),
            streamed,
        }
    }

    /// The guard of a screen whose handler checks its own access: streamed on request, nothing else.
    pub(crate) fn screen() -> Self {
        Self {
            scopes: None,
            streamed: true,
        }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard { inner, rule: *self }
    }
}

/// A route's service behind its [`GuardLayer`].
#[derive(Debug, Clone)]
pub(crate) struct Guard<S> {
    inner: S,
    rule: GuardLayer,
}

/// The answer of a refused or streamed request (rare, so boxed; an ordinary request is the route's own
/// future, unboxed).
type Boxed = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<S> Service<Request> for Guard<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, Boxed>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if let Some(scopes) = self.rule.scopes
            && let Err(refused) = allowed(&request, scopes)
        {
            return Either::Right(Box::pin(std::future::ready(Ok(refused.into_response()))));
        }
        if self.rule.streamed && screen::asks_for_stream(&request) {
            // The service polled ready goes with the stream; a clone stays for the next request.
            let clone = self.inner.clone();
            let next = BoxCloneSyncService::new(std::mem::replace(&mut self.inner, clone));
            return Either::Right(Box::pin(async move {
                Ok(screen::streamed(request, next).await)
            }));
        }
        // Called here, the service polled ready: its future owns what it needs, so the service is not
        // cloned (a clone of the boxed route is an allocation per request).
        Either::Left(self.inner.call(request))
    }
}

/// Whether the verified caller of `request` holds every one of `scopes` (401 without a caller).
fn allowed(request: &Request, scopes: Scopes) -> Result<(), BffError> {
    match request.extensions().get::<RequestContext>() {
        Some(ctx) => ctx.require_scopes(scopes).map(|_| ()),
        None => {
            tracing::error!("RequestContext missing: the router was not wrapped by the edge");
            Err(BffError::Internal)
        }
    }
}
