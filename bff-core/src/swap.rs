//! A router that can be replaced while serving ([`Swappable`], what hot reload swaps), and what a server
//! serves ([`Routes`]: one router, or a swappable one read per request). Kept apart from the reload logic,
//! which reads the configuration, so the server can use them without depending on `config` (this module
//! names neither, see `config::cycles`).

use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Bytes, HttpBody};
use axum::http::Request;
use axum::response::Response;
use axum::routing::future::RouteFuture;
use tower::Service;

/// A router that can be replaced while serving; each request runs on the router current at its arrival.
#[derive(Debug, Clone)]
pub struct Swappable {
    current: Arc<RwLock<Router>>,
}

impl Swappable {
    /// Serves `router` until swapped.
    pub fn new(router: Router) -> Self {
        Self {
            current: Arc::new(RwLock::new(finished(router))),
        }
    }

    /// Replaces the router for requests arriving from now on.
    pub fn swap(&self, router: Router) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = finished(router);
    }

    /// The router serving now (a reference-counted handle: requests arriving later may get another one).
    pub fn current(&self) -> Router {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// What a server serves (`server::serve`): one router, or whichever router a [`Swappable`] holds
/// when each request arrives. Each request is handed straight to that router: a [`Swappable`] is not wrapped
/// in another `Router` (which cost one more route match, boxed-route clone and future per request).
#[derive(Debug, Clone)]
pub enum Routes {
    /// The same router for every request.
    Fixed(Router),
    /// The router current at each request's arrival.
    Swappable(Swappable),
}

impl From<Router> for Routes {
    fn from(router: Router) -> Self {
        Self::Fixed(router)
    }
}

impl From<Swappable> for Routes {
    fn from(routes: Swappable) -> Self {
        Self::Swappable(routes)
    }
}

impl<B> Service<Request<B>> for Routes
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = RouteFuture<Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // A `Router` is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match self {
            Self::Fixed(router) => router.call(request),
            Self::Swappable(routes) => routes.current().call(request),
        }
    }
}

/// `router` with every handler turned into its finished service once. A `Router` whose handlers were never
/// given their state rebuilds each matched handler, with every route layer around it (the edge, compression,
/// conditional GET, ...), on every request: ~25 boxed services cloned per request (measured with
/// bench/callgrind, see bench/notes.md).
fn finished(router: Router) -> Router {
    router.with_state(())
}
