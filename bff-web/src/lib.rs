//! # bff-web
//!
//! The Backend-for-Frontend of the web app: rich, composed screens over the domain services.
//!
//! | route | composed from | required | optional parts (`bff-partial`) |
//! |---|---|---|---|
//! | `GET /api/home` | users, orders, catalog (batch), recommendations, inventory (batch) | profile, orders | `order_products`, `recommendations` |
//! | `GET /api/products/{id}` | catalog, reviews, inventory, catalog (batch of related) | product | `rating`, `reviews`, `availability`, `related` |
//! | `GET /api/products?category=&q=&page=&page_size=` | catalog | listing | — |
//! | `GET /api/orders/{id}` (scope `orders:read`) | orders, catalog (batch) | order | `products` |
//! | `GET /api/orders/{id}/events` (scope `orders:read`, `text/event-stream`) | orders (GET, then the NDJSON stream) | order | — |
//! | `GET /api/cart` | orders, catalog (batch) | cart | `products` |
//! | `POST /api/cart/items` | orders (command), catalog (batch) | cart | `products` |
//! | `DELETE /api/cart/items/{product_id}` | orders (command), catalog (batch) | cart | `products` |
//! | `POST /api/orders` (checkout) | orders (command), catalog (batch) | order | `products` |
//! | `POST /api/products/{id}/reviews` | reviews (command) | review | — |
//!
//! Writes take typed JSON bodies ([`commands`]), honour `Idempotency-Key`, make one command call, and
//! invalidate the cached reads they make stale.
//!
//! Clients authenticate with a JWT bearer token for audience `bff-web`, or — with `[auth.session] enabled = true`
//! (the dev stack) — as a browser with bff-core's session cookie (see `docs/sessions.md`).

pub mod commands;
mod handlers;

use bff_core::prelude::*;
use handlers::{cart, checkout, home, order_events, orders, products, reviews};
use shared_schemas::gateway::{Services, user_writes};
use utoipa::OpenApi;

/// The JWT audience of this gateway's clients.
pub const AUDIENCE: &str = "bff-web";
/// Default listening port (admin listener: 9081).
pub const DEFAULT_PORT: u16 = 8081;

/// Built-in defaults: the domain's ([`shared_schemas::gateway::defaults`]: every service, JWT for `bff-web`,
/// limits per user and per client address) on `127.0.0.1:8081`, and the tighter per-user limit on writes.
pub fn defaults() -> BffConfig {
    let mut config = shared_schemas::gateway::defaults(AUDIENCE, DEFAULT_PORT);
    config.rate_limit.policies.push(user_writes(&[
        "/api/cart/items",
        "/api/cart/items/{product_id}",
        "/api/orders",
        "/api/products/{id}/reviews",
    ]));
    config
}

/// The OpenAPI document of bff-web (core adds security, error responses and path parameters).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "bff-web",
        version = "1",
        description = "Backend-for-Frontend of the web app: composed, web-shaped screens. Authenticate with `Authorization: Bearer <JWT for audience bff-web>`. Failed optional parts are listed in the `bff-partial` response header."
    ),
    paths(
        home::home,
        products::product,
        products::list,
        orders::order,
        order_events::events,
        cart::get,
        cart::add,
        cart::remove,
        checkout::place,
        reviews::create
    )
)]
pub struct ApiDoc;

/// The complete bff-web router for `config`.
pub fn app(config: BffConfig) -> Result<Router, ConfigError> {
    let gateway = Gateway::new(config)?;
    let api = Api::new()
        .get("/api/home", CALLER, home::home)
        .get("/api/products", CALLER, products::list)
        .get("/api/products/{id}", CALLER, products::product)
        .post("/api/products/{id}/reviews", CALLER, reviews::create)
        .get("/api/orders/{id}", &["orders:read"], orders::order)
        .events(
            "/api/orders/{id}/events",
            &["orders:read"],
            order_events::events,
        )
        .post("/api/orders", CALLER, checkout::place)
        .get("/api/cart", CALLER, cart::get)
        .post("/api/cart/items", CALLER, cart::add)
        .delete("/api/cart/items/{product_id}", CALLER, cart::remove)
        .with_state(Services::new(&gateway)?);
    gateway.into_router(api, ApiDoc::openapi(), &["users", "catalog", "orders"])
}
