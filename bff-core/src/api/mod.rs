//! The gateway author's API: a router whose routes declare the scopes they need once — enforced before the
//! handler runs and written into the operation's OpenAPI security requirement by core — and the extractors
//! and responders handlers are written with ([`extract`], [`fields`]). `use bff_core::prelude::*;` brings
//! all of it into scope.
//!
//! ```no_run
//! use bff_core::prelude::*;
//!
//! async fn home(who: Caller) -> String { format!("hello {}", who.subject()) }
//! async fn order(Path(id): Path<u64>) -> String { format!("order {id}") }
//!
//! fn app(config: BffConfig, doc: utoipa::openapi::OpenApi) -> Result<Router, ConfigError> {
//!     let gateway = Gateway::new(config)?;
//!     let api = Api::new()
//!         .get("/api/home", CALLER, home) // any authenticated caller
//!         .get("/api/orders/{id}", &["orders:read"], order) // 403 without the scope; documented so
//!         .with_state(());
//!     gateway.into_router(api, doc, &["users"])
//! }
//! ```

pub mod extract;
pub mod fields;
pub(crate) mod guard;
pub mod write;

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter};

/// The scopes of a route: every one must be granted to the caller's credential.
pub type Scopes = &'static [&'static str];

/// Any authenticated caller, no particular scope.
pub const CALLER: Scopes = &[];

/// One route of an [`Api`]: what core enforces and documents for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// The HTTP method.
    pub method: Method,
    /// The route template, e.g. `/api/orders/{id}`.
    pub path: String,
    /// The scopes the caller needs (empty: any authenticated caller).
    pub scopes: Scopes,
    /// Whether the route is a screen a client may ask to stream (`Accept: text/event-stream`, see
    /// [`crate::streams::screen`]): every `GET` except the routes that answer an event stream themselves.
    pub streamed: bool,
}

/// A gateway's routes with their access rules: the one place a route's scopes are declared.
///
/// Each route answers 401 without a verified caller and 403 when the credential lacks a scope, before any
/// extractor or handler runs; [`crate::Gateway::into_router`] writes the same scopes into the operation's
/// OpenAPI security requirement (and documents a route the gateway's document does not describe).
#[derive(Debug)]
pub struct Api<S = ()> {
    router: Router<S>,
    operations: Vec<Operation>,
    /// WebSocket routes: authenticated by a ticket instead of a bearer credential (see [`crate::live`]).
    ticket_paths: Vec<String>,
}

impl<S: Clone + Send + Sync + 'static> Default for Api<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Send + Sync + 'static> Api<S> {
    /// No routes yet.
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            operations: Vec::new(),
            ticket_paths: Vec::new(),
        }
    }

    /// `GET path` for callers holding `scopes`, answered by `handler`: a screen, which a client may also ask
    /// for as a stream of its parts (`Accept: text/event-stream`, see [`crate::streams::screen`]).
    pub fn get<H: Handler<T, S>, T: 'static>(self, path: &str, scopes: Scopes, handler: H) -> Self {
        self.on(Method::GET, path, scopes, handler)
    }

    /// `GET path` for callers holding `scopes`, answered by `handler` with an event stream of its own (see
    /// [`crate::streams`]); never streamed as a screen.
    pub fn events<H: Handler<T, S>, T: 'static>(
        self,
        path: &str,
        scopes: Scopes,
        handler: H,
    ) -> Self {
        self.route(Method::GET, path, scopes, handler, false)
    }

    /// `POST path` for callers holding `scopes`, answered by `handler`.
    pub fn post<H: Handler<T, S>, T: 'static>(
        self,
        path: &str,
        scopes: Scopes,
        handler: H,
    ) -> Self {
        self.on(Method::POST, path, scopes, handler)
    }

    /// `PUT path` for callers holding `scopes`, answered by `handler`.
    pub fn put<H: Handler<T, S>, T: 'static>(self, path: &str, scopes: Scopes, handler: H) -> Self {
        self.on(Method::PUT, path, scopes, handler)
    }

    /// `PATCH path` for callers holding `scopes`, answered by `handler`.
    pub fn patch<H: Handler<T, S>, T: 'static>(
        self,
        path: &str,
        scopes: Scopes,
        handler: H,
    ) -> Self {
        self.on(Method::PATCH, path, scopes, handler)
    }

    /// `DELETE path` for callers holding `scopes`, answered by `handler`.
    pub fn delete<H: Handler<T, S>, T: 'static>(
        self,
        path: &str,
        scopes: Scopes,
        handler: H,
    ) -> Self {
        self.on(Method::DELETE, path, scopes, handler)
    }

    /// `GET path` upgraded to a WebSocket, for callers holding `scopes`, answered by `handler` (which calls
    /// [`crate::live::Live::upgrade`]): the edge authenticates this exact path by its single-use `?ticket=`
    /// (and the request's `Origin`) instead of a bearer credential, see [`crate::live`]; never streamed as a
    /// screen.
    pub fn live<H: Handler<T, S>, T: 'static>(
        mut self,
        path: &str,
        scopes: Scopes,
        handler: H,
    ) -> Self {
        self.ticket_paths.push(path.to_owned());
        self.route(Method::GET, path, scopes, handler, false)
    }

    fn on<H: Handler<T, S>, T: 'static>(
        self,
        method: Method,
        path: &str,
        scopes: Scopes,
        handler: H,
    ) -> Self {
        self.route(method, path, scopes, handler, true)
    }

    fn route<H: Handler<T, S>, T: 'static>(
        mut self,
        method: Method,
        path: &str,
        scopes: Scopes,
        handler: H,
        screen: bool,
    ) -> Self {
        let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
        let streamed = screen && method == Method::GET;
        // The route guard: 401 without a verified caller, 403 without `scopes`, else the handler (streamed,
        // see [`crate::streams::screen`], when a `streamed` route is asked for `text/event-stream`).
        let route: MethodRouter<S> = MethodRouter::new()
            .on(filter, handler)
            .route_layer(guard::GuardLayer::new(scopes, streamed));
        self.router = self.router.route(path, route);
        self.operations.push(Operation {
            method,
            path: path.to_owned(),
            scopes,
            streamed,
        });
        self
    }

    /// The routes with the handlers' state supplied.
    pub fn with_state(self, state: S) -> Api<()> {
        Api {
            router: self.router.with_state(state),
            operations: self.operations,
            ticket_paths: self.ticket_paths,
        }
    }
}

impl Api<()> {
    /// The routes, their access rules and the ticket-authenticated (WebSocket) paths.
    pub(crate) fn into_parts(self) -> (Router, Vec<Operation>, Vec<String>) {
        (self.router, self.operations, self.ticket_paths)
    }
}

/// A plain router: routes without declared access rules (the handlers check what they need).
impl From<Router> for Api<()> {
    fn from(router: Router) -> Self {
        Self {
            router,
            operations: Vec::new(),
            ticket_paths: Vec::new(),
        }
    }
}
