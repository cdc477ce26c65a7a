//! # bff-core
//!
//! The shared core of Backend-for-Frontend gateways: everything hard is done once, here, so that a gateway
//! crate only declares routes, composes downstream calls and shapes views.
//!
//! ```no_run
//! use bff_core::prelude::*;
//! use serde_json::{Value, json};
//!
//! /// The gateway's state: one client per downstream service, built by `bff_core::gateway::Gateway`.
//! struct App { users: Downstream, orders: Downstream, recs: Downstream }
//!
//! /// GET /api/home — profile + recent orders + (optional) recommendations of the verified caller.
//! async fn home(State(app): State<Arc<App>>, ctx: RequestContext, who: Caller) -> Reply<Json<Value>> {
//!     let user = who.user();
//!     let (profile, orders, recs) = tokio::try_join!(
//!         ctx.required("profile", app.users.get_json::<Value>(&ctx, format!("/users/{user}"))),
//!         ctx.required("orders", app.orders.get_json::<Value>(&ctx, format!("/users/{user}/orders?limit=5"))),
//!         ctx.optional("recommendations", app.recs.get_json::<Value>(&ctx, format!("/users/{user}/recommendations"))),
//!     )?;
//!     Ok(Json(json!({ "profile": profile, "orders": orders, "recommendations": recs })))
//! }
//!
//! /// The routes: any authenticated caller (`CALLER`), or e.g. `&["orders:read"]` — enforced and documented.
//! fn routes(app: Arc<App>) -> Api {
//!     Api::new().get("/api/home", CALLER, home).with_state(app)
//! }
//! ```
//!
//! # Layout
//! - [`config`]: typed config, figment layering (defaults < file < `BFF_*` env), validation naming bad keys.
//! - [`gateway`]: from config to downstream clients, authenticator and the complete edge-wrapped router.
//! - [`edge`]: the request pipeline (request id, trace, identity strip, auth, deadline, error normalisation).
//! - [`prelude`] / [`api`]: the gateway author's API: routes with declared scopes (enforced and documented
//!   once), problem+json extractors (`Caller`, `Id`, `Path`, `Query`), sparse fieldsets (`Fields`).
//! - [`context`]: the per-request context handlers receive; [`compose`]: required/optional parts, batching.
//! - [`downstream`]: the pooled HTTP client and per-service clients carrying the call policy.
//! - [`resilience`]: bulkheads, retries with a budget, hedging, circuit breakers, instances with balancing and
//!   health, fallbacks of parts, load shedding at the edge.
//! - [`auth`]: JWT/JWKS and API keys, identities, scopes, identity headers.
//! - [`body`]: typed JSON request bodies of commands ([`body::JsonBody`]: 415/400/413/422 with JSON Pointers);
//!   [`downstream::command`]: the one unsafe call of a write (never retried, coalesced or cached).
//! - [`idempotency`]: `Idempotency-Key` records (memory or Redis): replay, 409 in flight, 422 reused.
//! - [`streams`], [`live`]: long-lived connections to clients: Server-Sent Events, and WebSocket connections
//!   opened with single-use tickets (origin check, size limit, pings, per-user limit, slow consumers closed).
//! - [`error`]: [`BffError`] → RFC 9457 problem+json with stable codes; [`etag`]: strong ETags and 304s.
//! - [`cache`]: the downstream response cache (moka, optional Redis level), coalescing, stale serving,
//!   cross-request batching, the client-facing `Cache-Control` / `Vary` and compression.
//! - [`metrics`]: the Prometheus metric families; `observe`: what the edge records per request (metrics,
//!   access log, `Server-Timing`); [`admin`]: the admin listener (`/metrics`, probes, redacted config);
//!   [`health`]: liveness, readiness and draining.
//! - [`shape`], [`routes`], `aggregate`: field allow-lists and client-chosen sparse fieldsets, declarative forwarding routes and declarative
//!   aggregations (parallel fan-out merged into one JSON object) from config.
//! - [`ratelimit`]: rate-limit policies (IP, partner, tier, user, route), GCRA in memory or in Redis (exact
//!   across instances), trusted-proxy client addresses, the failed-authentication budget.
//! - [`trace`], [`telemetry`]: request ids, W3C trace context, logging.
//! - [`server`], [`cli`]: serving with graceful shutdown; the shared command line of gateway binaries;
//!   [`reload`]: hot reload (SIGHUP, file change) with validation and an atomic swap; [`alloc`]: the
//!   gateways' global allocator (mimalloc through its plain API; the one module with `unsafe` code).
//! - [`tls`]: TLS at the edge (termination, client certificates) and to downstreams (rustls), reloadable
//!   certificates.

pub mod admin;
mod aggregate;
pub mod alloc;
pub mod api;
pub mod auth;
pub mod body;
pub mod cache;
pub mod cli;
pub mod compose;
pub mod config;
pub mod conn;
pub mod context;
pub mod cors;
mod docs;
pub mod downstream;
pub mod edge;
pub mod error;
pub mod etag;
pub mod gateway;
pub mod health;
pub mod hygiene;
pub mod idempotency;
pub mod live;
pub mod metrics;
mod observe;
mod openapi;
pub mod otel;
pub mod per_user;
pub mod prelude;
pub mod ratelimit;
mod redis_conn;
pub mod reload;
pub mod resilience;
pub mod routes;
pub mod server;
pub mod session;
pub mod shape;
pub mod streams;
pub mod swap;
pub mod telemetry;
pub mod tls;
pub mod trace;

pub use compose::PARTIAL_HEADER;
pub use config::BffConfig;
pub use context::RequestContext;
pub use error::BffError;
pub use gateway::Gateway;
pub use resilience::DEGRADED_HEADER;
